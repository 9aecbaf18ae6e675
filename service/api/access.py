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
from starlette.datastructures import Headers

from service.api.deps import Services, ServicesDep
from service.errors import RateLimited, Unauthorized

# Upload routes check access from the headers before their body is read (upload_guard.py) and
# leave the principal here, so the route's dependency does not count the request twice.
PRINCIPAL_STATE = "principal"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _presented_key(headers: Headers) -> str | None:
    auth = headers.get("authorization", "")
    scheme, _, token = auth.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return headers.get("x-api-key") or None


async def check_access(headers: Headers, services: Services) -> str | None:
    """The caller's principal id (None when API keys are off), counted in its rate limit."""
    settings = services.settings
    if not settings.api_key_hashes:
        return None
    key = _presented_key(headers)
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


async def authenticate(request: Request, services: ServicesDep) -> str | None:
    """The caller's principal id, or None when API keys are off."""
    state = request.scope.get("state", {})
    if PRINCIPAL_STATE in state:
        principal: str | None = state[PRINCIPAL_STATE]
        return principal
    return await check_access(request.headers, services)


PrincipalDep = Annotated[str | None, Depends(authenticate)]
