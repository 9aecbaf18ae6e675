"""The worker process: a consume loop (``consumer``) feeding the image pipeline (``pipeline``)."""

from service.worker.consumer import Worker, default_worker_name

__all__ = ["Worker", "default_worker_name"]
