"""Idempotency-Key: a client's retry of a request whose answer it lost gets the first job back.

The key is scoped to the API key (or shared by everyone when keys are off) and lives as long as
the job it made. The same key with another photo, other options or another endpoint is refused
(422): the client reused a key, and answering with the first photo's result would be wrong.
A first job that ended in a failure worth retrying (the client had gone, a deadline, an outage)
does not stick: the retry runs the job again.
"""

from __future__ import annotations

import hashlib
from typing import Annotated

from fastapi import Header
from starlette.concurrency import run_in_threadpool

from service.queue.jobs import EnhanceOptions, JobResult
from service.queue.keys import Keys
from service.queue.streams import Once

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        description="Any unique string per photo and options (a UUID): a retry with the same "
        "key and body within the result's lifetime returns the first job, not a second run",
    ),
]
REPLAYED_HEADER = "Idempotent-Replayed"
REPLAY_DOC = (
    "With an Idempotency-Key seen before for the same photo and options (and API key), the first "
    "job's answer, marked `Idempotent-Replayed: true`, and no second model run; the same key "
    "with another body is 422 `idempotency_key_reused`."
)
# Failures that say nothing about the photo: a retry should run it again rather than see them.
_RERUN_CODES = frozenset(
    {
        "cancelled",
        "deadline_exceeded",
        "unavailable",
        "queue_unavailable",
        "model_unavailable",
        "overloaded",
    }
)


def _fingerprint(endpoint: str, options: EnhanceOptions, data: bytes) -> str:
    digest = hashlib.sha256(endpoint.encode())
    digest.update(options.model_dump_json().encode())
    digest.update(data)
    return digest.hexdigest()


async def claim(
    keys: Keys,
    key: str | None,
    principal: str | None,
    endpoint: str,
    options: EnhanceOptions,
    data: bytes,
) -> Once | None:
    """The claim to enqueue with, or None without a key. Hashing a large upload takes
    milliseconds (sha256 releases the GIL), so it runs off the event loop."""
    if key is None:
        return None
    fingerprint = await run_in_threadpool(_fingerprint, endpoint, options, data)
    key_digest = hashlib.sha256(key.encode()).hexdigest()[:32]
    return Once(keys.idempotency(principal, key_digest), fingerprint)


def worth_rerunning(result: JobResult | None) -> bool:
    return result is not None and result.status == "failed" and result.error_code in _RERUN_CODES
