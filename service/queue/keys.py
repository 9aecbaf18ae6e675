"""Every Redis key, stream, group and channel name, in one place."""

from __future__ import annotations

from dataclasses import dataclass

GROUP = "workers"
JOB_FIELD = b"job"


@dataclass(frozen=True, slots=True)
class Keys:
    prefix: str

    @property
    def stream(self) -> str:
        return f"{self.prefix}:jobs"

    def upload(self, job_id: str) -> str:
        return f"{self.prefix}:upload:{job_id}"

    def result(self, job_id: str) -> str:
        return f"{self.prefix}:result:{job_id}"

    def record(self, job_id: str) -> str:
        """An async job's record (options, size, owner): what GET /v1/jobs/{id} reads."""
        return f"{self.prefix}:job:{job_id}"

    def state(self, job_id: str) -> str:
        """``queued`` or ``running`` until the result exists."""
        return f"{self.prefix}:state:{job_id}"

    def cancelled(self, job_id: str) -> str:
        return f"{self.prefix}:cancelled:{job_id}"

    def attempts(self, job_id: str) -> str:
        return f"{self.prefix}:attempts:{job_id}"

    def idempotency(self, principal: str | None, key_digest: str) -> str:
        """The job an Idempotency-Key created, per API key (``-`` when keys are off)."""
        return f"{self.prefix}:idem:{principal or '-'}:{key_digest}"

    def rate(self, principal: str, window: int) -> str:
        return f"{self.prefix}:rate:{principal}:{window}"

    def notify_channel(self, gateway_id: str) -> str:
        return f"{self.prefix}:notify:{gateway_id}"

    def worker_alive(self, worker: str) -> str:
        return f"{self.prefix}:worker:{worker}"
