"""The one typed settings object. Nothing else in the service reads the environment.

Every limit, timeout and TTL is a named setting with its unit in the name. Values come from
``SLLEN_*`` environment variables (or a ``.env`` file); an invalid value stops start-up.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SLLEN_", env_file=".env", extra="ignore")

    # --- gateway
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    gateway_processes: int = Field(1, ge=1, le=64)
    request_deadline_s: float = Field(30.0, gt=0, le=600)
    job_deadline_s: float = Field(600.0, gt=0, le=86_400)
    max_inflight_requests: int = Field(64, ge=1)
    retry_after_s: int = Field(2, ge=1, le=3600)
    cors_origins: list[str] = Field(default_factory=list)
    # Slow clients (enforced per connection, before and while an upload is read). The request
    # line and headers must arrive within header_timeout_s of their first byte (of the
    # connection's opening, for its first request) and total at most max_header_bytes; else
    # 408 or 431 and the connection is closed. An upload body gets
    # body_timeout_s, plus one second per body_min_rate_bytes_per_s bytes received (Apache
    # mod_reqtimeout's "body=10,MinRate=8192"); slower, it is answered 408 and closed.
    header_timeout_s: float = Field(10.0, gt=0, le=300)
    max_header_bytes: int = Field(32 * 1024, ge=1024, le=1024 * 1024)
    body_timeout_s: float = Field(10.0, gt=0, le=600)
    body_min_rate_bytes_per_s: int = Field(8192, ge=1)
    # An upload still receiving its body after slow_body_after_s is a slow body: at most
    # max_slow_bodies of them per gateway process (more: 503 overloaded, closed). Bodies being
    # received never count against max_inflight_requests, which bounds uploads being served.
    slow_body_after_s: float = Field(2.0, gt=0, le=600)
    max_slow_bodies: int = Field(16, ge=1)
    # After an early answer (the body was refused unread) the connection is closed gracefully:
    # the answer, then FIN, then the rest of the body is read and dropped for this long at most.
    linger_s: float = Field(2.0, ge=0, le=60)

    # --- access: API keys are optional; only their SHA-256 hex digests are configured
    api_key_hashes: list[str] = Field(default_factory=list)
    rate_limit_per_minute: int = Field(0, ge=0)

    # --- upload limits (enforced before any full decode)
    max_upload_bytes: int = Field(25 * 1024 * 1024, ge=1024)
    max_image_pixels: int = Field(4096 * 4096, ge=1)
    max_image_side_px: int = Field(4096, ge=32, le=65535)

    # --- Redis
    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_password: SecretStr | None = None
    redis_socket_timeout_s: float = Field(5.0, gt=0)
    redis_ssl_ca_certs: Path | None = None
    key_prefix: str = "sllen"
    upload_ttl_s: int = Field(300, ge=1)
    result_ttl_s: int = Field(600, ge=1)
    # A sync result is deleted when its gateway reads it; one nobody reads expires this long
    # after its request's deadline.
    sync_result_ttl_s: int = Field(10, ge=1)
    max_queue_length: int = Field(1000, ge=1)
    # New jobs are turned away (503 overloaded) once Redis uses this fraction of its maxmemory,
    # so that the results of jobs already queued still fit (no cap configured: no check).
    redis_admit_memory_fraction: float = Field(0.8, gt=0, le=1)

    # --- Triton
    triton_grpc_url: str = "127.0.0.1:8001"
    triton_model: str = "sllen"
    triton_model_version: str = ""
    triton_timeout_s: float = Field(60.0, gt=0)
    # Pixels to and from Triton through system shared memory instead of inside gRPC messages:
    # "auto" does so when triton_grpc_url is a loopback address (Triton on this host), and
    # falls back to gRPC if Triton cannot map the regions; the pool holds at most the MiB given.
    triton_shared_memory: Literal["auto", "on", "off"] = "auto"
    triton_shared_memory_max_mb: int = Field(256, ge=8)

    # --- worker
    worker_name: str = ""
    worker_concurrency: int = Field(2, ge=1, le=64)
    batch_max_size: int = Field(4, ge=1, le=64)
    batch_max_pixels: int = Field(2 * 1024 * 1024, ge=1)
    batch_wait_ms: int = Field(0, ge=0, le=10_000)
    # Pad sides up to a multiple of this so different sizes batch together (0: equal shapes
    # only). Off by default: on a CPU a batch runs no faster per image than single images,
    # so padding is pure cost there (benchmarks/buckets.py); GPUs gain from full batches.
    batch_bucket_px: int = Field(0, ge=0, le=4096)
    read_block_ms: int = Field(1000, ge=1)
    # A pending job idle this long is taken from its worker, presumed dead: well under the
    # request deadline, so a crash costs sync requests seconds, not a 504. Live workers touch
    # their jobs every third of it.
    claim_idle_ms: int = Field(5_000, ge=100)
    claim_interval_s: float = Field(1.0, gt=0)
    max_attempts: int = Field(3, ge=1, le=100)
    retry_backoff_s: float = Field(0.5, gt=0)
    retry_backoff_max_s: float = Field(8.0, gt=0)
    worker_heartbeat_ttl_s: int = Field(15, ge=1)
    # Each worker serves /metrics here (0: not at all); under `sllen run` worker i uses this + i.
    worker_metrics_port: int = Field(8100, ge=0, le=65535)
    model_min_side_px: int = Field(32, ge=1)
    tile_above_pixels: int = Field(2048 * 2048, ge=1)
    tile_size_px: int = Field(1024, ge=64, le=4096)
    tile_overlap_px: int = Field(128, ge=0)

    # --- encoding
    png_compress_level: int = Field(1, ge=0, le=9)
    jpeg_quality: int = Field(90, ge=1, le=100)
    webp_quality: int = Field(85, ge=1, le=100)
    avif_quality: int = Field(75, ge=1, le=100)

    # --- local stack (`sllen run`): ports and where state and logs go
    workers: int = Field(1, ge=1, le=32)
    redis_port: int = Field(6379, ge=1, le=65535)
    # The local Redis's memory cap; it never evicts (a queued job must not vanish), it refuses.
    redis_maxmemory_mb: int = Field(1024, ge=16)
    triton_grpc_port: int = Field(8001, ge=1, le=65535)
    triton_http_port: int = Field(8011, ge=1, le=65535)
    triton_metrics_port: int = Field(8002, ge=1, le=65535)
    # Where Triton's HTTP, gRPC and metrics ports listen: loopback for the local stack; a
    # container needs 0.0.0.0 (k8s/base/config.yaml), where NetworkPolicy confines the callers.
    triton_bind_address: str = "127.0.0.1"
    # Triton's model repository API (load/unload at runtime). Off: the served model loads at
    # start-up and nothing can unload it. Nothing in the service needs it on.
    triton_model_control: bool = False
    model_repository: Path = PROJECT_ROOT / "model_repository"
    state_dir: Path = PROJECT_ROOT / ".run"
    start_local_redis: bool = True
    start_local_triton: bool = True
    # Niceness of the local Triton (and so of ONNX Runtime in its stub): on shared cores the
    # gateway, worker and codecs go first (locust, mixed sizes: best tails, p99 2.2 vs 3.5 s).
    triton_nice: int = Field(10, ge=0, le=19)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @model_validator(mode="after")
    def _check(self) -> Settings:
        if self.max_image_side_px**2 < 32 * 32:
            raise ValueError("max_image_side_px is too small for the model")
        bad = [h for h in self.api_key_hashes if not _SHA256_HEX.fullmatch(h)]
        if bad:
            raise ValueError("SLLEN_API_KEY_HASHES must hold SHA-256 hex digests, not keys")
        if self.tile_overlap_px >= self.tile_size_px // 2:
            raise ValueError("SLLEN_TILE_OVERLAP_PX must be under half of SLLEN_TILE_SIZE_PX")
        if self.retry_backoff_max_s < self.retry_backoff_s:
            raise ValueError("retry_backoff_max_s must be >= retry_backoff_s")
        if self.redis_password is not None and self.redis_password.get_secret_value() in {
            "changethis",
            "changeme",
        }:
            raise ValueError("SLLEN_REDIS_PASSWORD is a placeholder; set a real secret")
        return self


def settings_env(settings: Settings) -> dict[str, str]:
    """SLLEN_* variables that make a child process build these same settings (secrets included:
    they go to our own children's environment, never to logs)."""
    env: dict[str, str] = {}
    for name, value in settings.model_dump(mode="json").items():
        if value is None:
            continue
        if name == "redis_password" and settings.redis_password is not None:
            value = settings.redis_password.get_secret_value()
        env[f"SLLEN_{name.upper()}"] = value if isinstance(value, str) else json.dumps(value)
    return env


@lru_cache
def get_settings() -> Settings:
    return Settings()
