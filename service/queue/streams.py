"""Operations on the job stream: enqueue, read, reclaim, finish. Redis errors become ours here.

One Redis Stream holds the jobs, read by the consumer group ``workers``. Upload bytes live under
their own key with a TTL, so a stream entry stays small. A job leaves the stream only when its
result is written: the result write, the ack and the wake-up of the waiting gateway go in one
MULTI, so a worker that dies half-way leaves the job pending for another worker to reclaim.
"""

from __future__ import annotations

import logging
import math
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import redis.asyncio as aioredis
from pydantic import ValidationError
from redis.exceptions import RedisError, ResponseError

from service.config import Settings
from service.errors import Overloaded, QueueUnavailable
from service.queue.jobs import Job, JobRecord, JobResult, now_ms
from service.queue.keys import GROUP, JOB_FIELD, Keys

log = logging.getLogger(__name__)
T = TypeVar("T")


def connect(settings: Settings) -> aioredis.Redis:
    """A pooled client. Bytes in, bytes out: uploads and results are binary."""
    password = settings.redis_password.get_secret_value() if settings.redis_password else None
    tls: dict[str, Any] = {}
    if settings.redis_ssl_ca_certs is not None:  # takes effect with a rediss:// URL
        tls["ssl_ca_certs"] = str(settings.redis_ssl_ca_certs)
    return aioredis.Redis.from_url(
        settings.redis_url,
        password=password,
        **tls,
        socket_timeout=settings.redis_socket_timeout_s,
        socket_connect_timeout=settings.redis_socket_timeout_s,
        health_check_interval=30,
        decode_responses=False,
    )


@dataclass(frozen=True, slots=True)
class Entry:
    """A stream entry; ``job`` is None when the entry could not be parsed (it is dropped)."""

    entry_id: bytes
    job: Job | None


@dataclass(frozen=True, slots=True)
class Attempt:
    """A delivery of a job to a worker, as ``JobQueue.begin_attempt`` found it."""

    number: int  # deliveries so far, this one included
    cancelled: bool  # the client has given up on the job
    upload: bytes | None  # None: the upload expired


@dataclass(frozen=True, slots=True)
class QueueStats:
    depth: int
    pending: int
    oldest_age_s: float


# The admission checks and the writes in one atomic round trip: as XLEN then MULTI, two gateways
# could both pass a nearly full queue, and every request paid a second round trip (~0.3 ms at
# concurrency 1 on the 2-core Xeon). With an Idempotency-Key (KEYS[5]) the lookup of an earlier
# job and the claim of the key go in the same script, so two identical requests racing each
# other make one job: the second gets the first's "job_id fingerprint" back. An earlier job
# counts while its record, result or upload exists; ARGV[13] names a claim to take over (the
# earlier job ended in a failure worth running again). Memory: with a maxmemory cap, new work
# is refused once used_memory reaches ARGV[14] of it, so the results of jobs already queued
# still fit under the cap (noeviction: past it, every write fails). INFO memory costs ~10 us.
_ENQUEUE = """
if ARGV[8] ~= '' then
  local seen = redis.call('GET', KEYS[5])
  if seen and seen ~= ARGV[13] then
    local id = string.match(seen, '^[^ ]+')
    if redis.call('EXISTS', ARGV[10] .. id, ARGV[11] .. id, ARGV[12] .. id) > 0 then
      return seen
    end
  end
end
local info = redis.call('INFO', 'memory')
local cap = tonumber(string.match(info, '\\nmaxmemory:(%d+)') or '0')
if cap > 0 then
  local used = tonumber(string.match(info, '\\nused_memory:(%d+)'))
  if used >= cap * tonumber(ARGV[14]) then return -1 end
end
if redis.call('XLEN', KEYS[1]) >= tonumber(ARGV[1]) then return 0 end
redis.call('SET', KEYS[2], ARGV[2], 'EX', ARGV[3])
if ARGV[6] ~= '' then
  redis.call('SET', KEYS[3], ARGV[6], 'PX', ARGV[7])
  redis.call('SET', KEYS[4], 'queued', 'PX', ARGV[7])
end
if ARGV[8] ~= '' then
  redis.call('SET', KEYS[5], ARGV[8], 'PX', ARGV[9])
end
redis.call('XADD', KEYS[1], '*', ARGV[4], ARGV[5])
return 1
"""


@dataclass(frozen=True, slots=True)
class Once:
    """An Idempotency-Key claim: its Redis key and the fingerprint of the request's body."""

    key: str
    fingerprint: str
    replace: str = ""  # an earlier claim ("job_id fingerprint") to take over


@dataclass(frozen=True, slots=True)
class Earlier:
    """The job an Idempotency-Key already made."""

    job_id: str
    fingerprint: str
    claim: str


class _GroupMissing(QueueUnavailable):
    """Redis lost the stream or its group (restarted without persistence, or flushed)."""


async def _guard(op: Awaitable[T], what: str) -> T:
    try:
        return await op
    except ResponseError as exc:
        if "NOGROUP" in str(exc):
            raise _GroupMissing(f"consumer group missing during {what}") from exc
        if str(exc).startswith("OOM"):  # past maxmemory (noeviction): writes wait for room
            raise Overloaded(f"Redis is at its memory cap during {what}") from exc
        raise QueueUnavailable(f"Redis refused {what}: {exc}") from exc
    except RedisError as exc:
        raise QueueUnavailable(f"Redis failed during {what}: {type(exc).__name__}") from exc


class JobQueue:
    def __init__(self, redis: aioredis.Redis, settings: Settings) -> None:
        self.redis = redis
        self.settings = settings
        self.keys = Keys(settings.key_prefix)
        self._enqueue = redis.register_script(_ENQUEUE)

    # --- gateway side
    async def ensure_group(self) -> None:
        try:
            await self.redis.xgroup_create(self.keys.stream, GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise QueueUnavailable(f"cannot create consumer group: {exc}") from exc
        except RedisError as exc:
            raise QueueUnavailable(
                f"Redis failed creating the group: {type(exc).__name__}"
            ) from exc

    async def enqueue(
        self, job: Job, upload: bytes, record: JobRecord | None = None, once: Once | None = None
    ) -> Earlier | None:
        """Queue a job; with a ``record`` it is an async job that clients can look up. With
        ``once``, the job the same Idempotency-Key made earlier, if it still exists, is returned
        instead and nothing is queued."""
        ttl_s = self.settings.upload_ttl_s
        record_json, record_ttl_ms = b"", 0
        life_ms = max(job.deadline_at_ms - now_ms(), 1) + ttl_s * 1000
        if record is not None:
            record_json = record.model_dump_json().encode()
            record_ttl_ms = life_ms
        k = self.keys
        keys = [k.stream, k.upload(job.id), k.record(job.id), k.state(job.id)]
        claim: list[Any] = ["", 0, "", "", "", ""]
        if once is not None:
            keys.append(once.key)
            # The claim outlives the job's result: it is only honoured while the job exists.
            claim_ms = life_ms + self.settings.result_ttl_s * 1000
            claim = [f"{job.id} {once.fingerprint}", claim_ms, k.record(""), k.result("")]
            claim += [k.upload(""), once.replace]
        reply: Any = await _guard(
            self._enqueue(
                keys=keys,
                args=[
                    self.settings.max_queue_length,
                    upload,
                    ttl_s,
                    JOB_FIELD,
                    job.model_dump_json().encode(),
                    record_json,
                    record_ttl_ms,
                    *claim,
                    self.settings.redis_admit_memory_fraction,
                ],
            ),
            "enqueue",
        )
        if isinstance(reply, bytes):
            seen = reply.decode()
            job_id, _, fingerprint = seen.partition(" ")
            return Earlier(job_id, fingerprint, seen)
        if reply == 0:
            raise Overloaded("the job queue is full", retry_after_s=self.settings.retry_after_s)
        if reply < 0:
            raise Overloaded(
                "Redis is near its memory cap", retry_after_s=self.settings.retry_after_s
            )
        return None

    async def get_record(self, job_id: str) -> JobRecord | None:
        raw: Any = await _guard(self.redis.get(self.keys.record(job_id)), "GET record")
        return JobRecord.model_validate_json(raw) if raw is not None else None

    async def take_result(self, job_id: str) -> JobResult | None:
        """A sync job's result, deleted as it is read (GETDEL: the same single round trip)."""
        raw: Any = await _guard(self.redis.getdel(self.keys.result(job_id)), "GETDEL result")
        return JobResult.unpack(raw) if raw is not None else None

    async def get_state(self, job_id: str) -> str | None:
        raw: Any = await _guard(self.redis.get(self.keys.state(job_id)), "GET state")
        return bytes(raw).decode() if raw is not None else None

    async def get_result(self, job_id: str) -> JobResult | None:
        raw: Any = await _guard(self.redis.get(self.keys.result(job_id)), "GET result")
        return JobResult.unpack(raw) if raw is not None else None

    async def ping(self) -> bool:
        try:
            return bool(await self.redis.ping())
        except RedisError:
            return False

    # --- worker side
    async def read(self, consumer: str, count: int, block_ms: int | None) -> list[Entry]:
        try:
            reply: Any = await _guard(
                self.redis.xreadgroup(
                    GROUP, consumer, {self.keys.stream: ">"}, count=count, block=block_ms
                ),
                "XREADGROUP",
            )
        except _GroupMissing:
            await self.ensure_group()
            return []
        return [self._parse(eid, fields) for _, entries in reply or [] for eid, fields in entries]

    async def read_own(self, consumer: str, count: int, after: bytes = b"0") -> list[Entry]:
        """Entries already delivered to ``consumer`` and not acked (its pending list), after
        ``after``: what a worker that restarts under the same name held when it died."""
        try:
            reply: Any = await _guard(
                self.redis.xreadgroup(GROUP, consumer, {self.keys.stream: after}, count=count),
                "XREADGROUP own pending",
            )
        except _GroupMissing:
            await self.ensure_group()
            return []
        # An entry deleted from the stream but still pending comes back without fields.
        return [
            self._parse(eid, fields) if fields else Entry(eid, None)
            for _, entries in reply or []
            for eid, fields in entries
        ]

    async def reclaim(self, consumer: str, count: int) -> list[Entry]:
        """Take over jobs that a dead (or stuck) worker left pending past the idle timeout."""
        try:
            reply: Any = await _guard(
                self.redis.xautoclaim(
                    self.keys.stream,
                    GROUP,
                    consumer,
                    self.settings.claim_idle_ms,
                    "0-0",
                    count=count,
                ),
                "XAUTOCLAIM",
            )
        except _GroupMissing:
            await self.ensure_group()
            return []
        entries = reply[1] if reply else []
        return [self._parse(eid, fields) for eid, fields in entries if fields]

    async def touch(self, consumer: str, entry_ids: list[Any]) -> None:
        """Reset the idle time of jobs still being worked on, so nobody reclaims them."""
        if entry_ids:
            await _guard(
                self.redis.xclaim(self.keys.stream, GROUP, consumer, 0, entry_ids, justid=True),
                "XCLAIM",
            )

    async def begin_attempt(self, job_id: str) -> Attempt:
        """Start a delivery in one round trip: count it, see whether the client has given up,
        mark the job running and fetch its upload (a failed start is overwritten by its result)."""
        key = self.keys.attempts(job_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.incr(key)
            pipe.expire(key, self.settings.upload_ttl_s + self.settings.result_ttl_s)
            pipe.exists(self.keys.cancelled(job_id))
            # XX: only async jobs have a state key; KEEPTTL: the record's lifetime is unchanged.
            pipe.set(self.keys.state(job_id), b"running", xx=True, keepttl=True)
            pipe.get(self.keys.upload(job_id))
            n, _, cancelled, _, upload = await _guard(pipe.execute(), "begin attempt")
        return Attempt(int(n), bool(cancelled), bytes(upload) if upload is not None else None)

    async def cancel(self, job_id: str, ttl_s: int) -> None:
        """The client went away: workers that have not started the job skip it."""
        await _guard(self.redis.set(self.keys.cancelled(job_id), b"1", ex=max(ttl_s, 1)), "cancel")

    async def finish(
        self,
        entry_id: bytes,
        job_id: str,
        reply_to: str | None,
        result: JobResult,
        deadline_at_ms: int = 0,
        replayable: bool = False,
    ) -> bool:
        """Write the result (first writer wins), ack, and wake the waiter, all or nothing."""
        # A sync result is read (and deleted) by its gateway within moments, at the latest when
        # it looks once more at the request's deadline; past that nobody ever will. So it lives
        # until the deadline plus SLLEN_SYNC_RESULT_TTL_S; an async result SLLEN_RESULT_TTL_S, and
        # so does a sync one that a retry with the same Idempotency-Key may ask for.
        ttl_ms = self.settings.result_ttl_s * 1000
        if reply_to and not replayable:
            ttl_ms = max(deadline_at_ms - now_ms(), 0) + self.settings.sync_result_ttl_s * 1000
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(self.keys.result(job_id), result.pack(), px=ttl_ms, nx=True)
            pipe.delete(
                self.keys.upload(job_id), self.keys.attempts(job_id), self.keys.state(job_id)
            )
            pipe.expire(self.keys.record(job_id), self.settings.result_ttl_s)
            pipe.xack(self.keys.stream, GROUP, entry_id)
            pipe.xdel(self.keys.stream, entry_id)
            if reply_to:
                pipe.publish(reply_to, job_id.encode())
            replies = await _guard(pipe.execute(), "finish")
        return bool(replies[0])

    async def drop(self, entry_id: bytes) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.xack(self.keys.stream, GROUP, entry_id)
            pipe.xdel(self.keys.stream, entry_id)
            await _guard(pipe.execute(), "drop")

    async def stats(self) -> QueueStats:
        """Depth, pending count and the age of the oldest unfinished job (entries leave on ack)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.xlen(self.keys.stream)
            pipe.xpending(self.keys.stream, GROUP)
            pipe.xrange(self.keys.stream, count=1)
            depth, pending, first = await _guard(pipe.execute(), "queue stats")
        oldest_age_s = 0.0
        if first:
            first_ms = int(first[0][0].split(b"-")[0])
            oldest_age_s = max(0.0, (now_ms() - first_ms) / 1000)
        return QueueStats(int(depth), int(pending["pending"]), oldest_age_s)

    async def hit_rate_limit(self, principal: str, limit: int, window_s: int = 60) -> int:
        """Count one request in the principal's fixed window; seconds to wait if over the limit."""
        window = now_ms() // (window_s * 1000)
        key = self.keys.rate(principal, window)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.incr(key)
            pipe.expire(key, window_s * 2)
            count, _ = await _guard(pipe.execute(), "rate limit")
        if int(count) <= limit:
            return 0
        # Rounded up: a client that waits exactly this long must find the next window open.
        return max(1, math.ceil(((window + 1) * window_s * 1000 - now_ms()) / 1000))

    async def heartbeat(self, worker: str, ttl_s: int) -> None:
        await _guard(self.redis.set(self.keys.worker_alive(worker), b"1", ex=ttl_s), "heartbeat")

    def _parse(self, entry_id: bytes, fields: dict[bytes, Any]) -> Entry:
        try:
            return Entry(entry_id, Job.model_validate_json(fields[JOB_FIELD]))
        except (KeyError, ValidationError) as exc:
            log.error("dropping malformed stream entry %s: %s", entry_id, exc)
            return Entry(entry_id, None)


@asynccontextmanager
async def open_queue(settings: Settings) -> AsyncIterator[JobQueue]:
    client = connect(settings)
    try:
        yield JobQueue(client, settings)
    finally:
        await client.aclose()
