"""Every Prometheus metric, named once. Our metrics are prefixed ``sllen_``.

With several gateway processes set ``PROMETHEUS_MULTIPROC_DIR`` (prometheus-client's own switch);
each worker process serves its own registry on ``SLLEN_WORKER_METRICS_PORT`` + its index.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

_LATENCY_BUCKETS_S = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

# --- gateway
HTTP_REQUESTS = Counter(
    "sllen_http_requests_total", "HTTP requests by route and status", ["method", "route", "status"]
)
HTTP_LATENCY = Histogram(
    "sllen_http_request_duration_seconds",
    "HTTP request latency",
    ["method", "route"],
    buckets=_LATENCY_BUCKETS_S,
)
INFLIGHT = Gauge(
    "sllen_http_inflight_requests", "Requests being served", multiprocess_mode="livesum"
)
CONNECTIONS_REFUSED = Counter(
    "sllen_http_connections_refused_total",
    "Connections closed before their request reached the app (slow or oversized head)",
    ["reason"],
)
ERRORS = Counter("sllen_errors_total", "Errors answered to clients, by kind", ["code"])
QUEUE_WAIT = Histogram(
    "sllen_queue_wait_seconds",
    "Time a job spent queued before a worker took it",
    buckets=_LATENCY_BUCKETS_S,
)

# --- worker
JOBS = Counter("sllen_jobs_total", "Jobs finished by workers, by outcome", ["outcome"])
BATCH_SIZE = Histogram(
    "sllen_batch_size", "Images per Triton call", buckets=(1, 2, 3, 4, 6, 8, 12, 16, 32, 64)
)
INFERENCE = Histogram(
    "sllen_inference_duration_seconds", "Triton call latency per batch", buckets=_LATENCY_BUCKETS_S
)
CODEC = Histogram(
    "sllen_codec_duration_seconds",
    "Image decode/encode time per image",
    ["op"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0),
)
TRITON_CALLS = Counter(
    "sllen_triton_calls_total",
    "Triton calls by how the pixels travelled (shared memory or inside gRPC)",
    ["transport"],
)
RETRIES = Counter("sllen_inference_retries_total", "Transient Triton failures retried")
QUEUE_DEPTH = Gauge(
    "sllen_queue_depth", "Jobs in the stream (waiting or being worked on)", multiprocess_mode="max"
)
QUEUE_PENDING = Gauge(
    "sllen_queue_pending",
    "Jobs delivered to a worker but not yet acknowledged",
    multiprocess_mode="max",
)
QUEUE_OLDEST_AGE = Gauge(
    "sllen_queue_oldest_age_seconds",
    "Age of the oldest unfinished job (queue lag)",
    multiprocess_mode="max",
)
RECLAIMED = Counter("sllen_jobs_reclaimed_total", "Jobs taken over from a dead or stuck worker")
