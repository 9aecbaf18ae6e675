"""Optional API keys and per-key rate limits.

Keys arrive as ``Authorization: Bearer <key>`` or ``X-API-Key``. Only SHA-256 digests are configured
(``SLLEN_API_KEY_HASHES``), compared in constant time. A key's principal id is a prefix of its
digest: it owns the jobs it creates and names its rate-limit window in Redis; the key itself is
never stored or logged. With no keys configured the service is open and every job is ownerless.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Annotated

from fastapi import Depends, Request

from service.api.deps import ServicesDep
from service.errors import RateLimited, Unauthorized


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _presented_key(request: Request) -> str | None:
    auth = request.headers.get("authorization", "")
    scheme, _, token = auth.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return request.headers.get("x-api-key") or None


async def authenticate(request: Request, services: ServicesDep) -> str | None:
    """The caller's principal id, or None when API keys are off."""
    settings = services.settings
    if not settings.api_key_hashes:
        return None
    key = _presented_key(request)
    if key is None:
        raise Unauthorized("an API key is required (Authorization: Bearer or X-API-Key)")
    digest = hash_key(key)
    if not any(hmac.compare_digest(digest, known) for known in settings.api_key_hashes):
        raise Unauthorized("unknown API key")
    principal = digest[:16]
    if settings.rate_limit_per_minute:
        wait_s = await services.queue.hit_rate_limit(principal, settings.rate_limit_per_minute)
        if wait_s:
            raise RateLimited(
                f"over {settings.rate_limit_per_minute} requests per minute", retry_after_s=wait_s
            )
    return principal


PrincipalDep = Annotated[str | None, Depends(authenticate)]
