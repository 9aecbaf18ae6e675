"""Gateway side of result delivery: one pub/sub subscription per process, one future per job.

Workers publish the job id on the gateway's channel after the result is stored. A message can be
lost while the subscription reconnects (redis-py may even reconnect silently), so after every
(re)subscribe, every few seconds of waiting and at the deadline the waiter also looks the result
up directly: a result is never missed, only (rarely) noticed a few seconds later.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from service.queue.keys import Keys

log = logging.getLogger(__name__)
# How often a waiting request looks its result up itself: one EXISTS per waiter, so a lost
# wake-up costs seconds, not the rest of the request's deadline.
RECHECK_S = 3.0


class ResultWaiter:
    def __init__(self, redis: aioredis.Redis, keys: Keys) -> None:
        self._redis = redis
        self._keys = keys
        self.channel = keys.notify_channel(secrets.token_hex(8))
        self._pending: dict[str, asyncio.Future[None]] = {}
        self._task: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._listen(), name="result-waiter")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def register(self, job_id: str) -> asyncio.Future[None]:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending[job_id] = fut
        return fut

    def forget(self, job_id: str) -> None:
        fut = self._pending.pop(job_id, None)
        if fut and not fut.done():
            fut.cancel()

    async def wait(self, job_id: str, fut: asyncio.Future[None], timeout_s: float) -> bool:
        """True once the result exists; False when the deadline passes first."""
        deadline = asyncio.get_running_loop().time() + max(timeout_s, 0.0)
        try:
            while True:
                left = deadline - asyncio.get_running_loop().time()
                try:
                    await asyncio.wait_for(
                        asyncio.shield(fut), timeout=max(min(left, RECHECK_S), 0)
                    )
                    return True
                except TimeoutError:
                    if await self._exists(job_id):
                        return True
                    if left <= RECHECK_S:
                        return False
        finally:
            self.forget(job_id)

    async def _exists(self, job_id: str) -> bool:
        try:
            return bool(await self._redis.exists(self._keys.result(job_id)))
        except RedisError:
            return False

    def _wake(self, job_id: str) -> None:
        fut = self._pending.get(job_id)
        if fut and not fut.done():
            fut.set_result(None)

    async def _sweep(self) -> None:
        """After a reconnect: wake every waiter whose result arrived while we were deaf. A Redis
        error is raised, not taken for "no result": the listener then subscribes and sweeps
        again (after a Redis restart the first commands on pooled connections can fail)."""
        for job_id in list(self._pending):
            if await self._redis.exists(self._keys.result(job_id)):
                self._wake(job_id)

    async def _listen(self) -> None:
        backoff_s = 0.1
        while True:
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.channel)
                self._subscribed.set()
                backoff_s = 0.1
                await self._sweep()
                async for message in pubsub.listen():
                    if message.get("type") == "message":
                        self._wake(bytes(message["data"]).decode())
            except RedisError as exc:
                log.warning("result subscription lost (%s); retrying in %.1fs", exc, backoff_s)
                await asyncio.sleep(backoff_s)
                backoff_s = min(backoff_s * 2, 5.0)
            finally:
                with contextlib.suppress(RedisError, RuntimeError):
                    # redis-py annotates aclose() in some releases and not in others.
                    await pubsub.aclose()  # type: ignore[no-untyped-call, unused-ignore]
