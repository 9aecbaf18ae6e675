from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from service.api.problems import status_for
from service.config import Settings
from service.errors import (
    DeadlineExceeded,
    InvalidOptions,
    JobFailed,
    ModelUnavailable,
    Overloaded,
    PayloadTooLarge,
    QueueUnavailable,
    UndecodableImage,
    UnsupportedMediaType,
    error_from_code,
)
from service.queue.jobs import JobResult


def test_settings_read_prefixed_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLLEN_PORT", "9123")
    monkeypatch.setenv("SLLEN_BATCH_MAX_SIZE", "6")
    s = Settings()
    assert (s.port, s.batch_max_size) == (9123, 6)


@pytest.mark.parametrize(
    "bad",
    [
        {"port": 0},
        {"batch_max_size": 0},
        {"redis_password": "changethis"},
        {"png_compress_level": 10},
    ],
)
def test_invalid_settings_refuse_to_start(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        Settings(**bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("exc", "status"),
    [
        (UnsupportedMediaType("x"), 415),
        (UndecodableImage("x"), 400),
        (PayloadTooLarge("x"), 413),
        (InvalidOptions("x"), 422),
        (QueueUnavailable("x"), 503),
        (ModelUnavailable("x"), 503),
        (Overloaded("x"), 503),
        (DeadlineExceeded("x"), 504),
        (JobFailed("x"), 500),
    ],
)
def test_each_error_has_one_status(exc: Exception, status: int) -> None:
    assert status_for(exc)[0] == status  # type: ignore[arg-type]


def test_worker_error_codes_round_trip_to_the_same_exception() -> None:
    for cls in (UndecodableImage, PayloadTooLarge, DeadlineExceeded, JobFailed):
        rebuilt = error_from_code(cls.code, "why")
        assert type(rebuilt) is cls and rebuilt.detail == "why"
    assert type(error_from_code("no-such-code", "?")) is JobFailed


def test_result_packs_binary_without_pickle() -> None:
    result = JobResult(
        id="j", status="done", image=b"\x00\xff" * 10, mask=b"\x01", width=3, height=2
    )
    assert JobResult.unpack(result.pack()) == result


def test_every_setting_is_documented_in_the_readme() -> None:
    from service.config import PROJECT_ROOT

    readme = (PROJECT_ROOT / "README.md").read_text()
    missing = [name for name in Settings.model_fields if f"`SLLEN_{name.upper()}`" not in readme]
    assert not missing


def test_docs_list_every_hostile_input_case() -> None:
    from service.config import PROJECT_ROOT
    from tests.hostile import CASES

    doc = (PROJECT_ROOT / "docs" / "robustness.md").read_text()
    assert [c.id for c in CASES if f"`{c.id}`" not in doc] == []


def test_local_triton_runs_nice_unless_told_not_to() -> None:
    from service.local.supervisor import plan

    def triton_argv(**kw: object) -> list[str]:
        settings = Settings(start_local_redis=False, **kw)  # type: ignore[arg-type]
        return next(c.argv for c in plan(settings) if c.name == "triton")

    assert triton_argv()[:3] == ["nice", "-n", "10"]
    assert triton_argv(triton_nice=0)[0].endswith("tritonserver")


def test_local_triton_binds_to_loopback_without_model_control(tmp_path: Path) -> None:
    from service.local.supervisor import plan

    def triton_argv(**kw: object) -> list[str]:
        settings = Settings(
            start_local_redis=False,
            triton_nice=0,
            state_dir=tmp_path,
            **kw,  # type: ignore[arg-type]
        )
        return next(c.argv for c in plan(settings) if c.name == "triton")

    argv = triton_argv()
    for port in ("http", "grpc", "metrics"):
        assert f"--{port}-address=127.0.0.1" in argv
    assert "--model-control-mode=none" in argv and not any("--load-model" in a for a in argv)
    served = Path(next(a for a in argv if a.startswith("--model-repository=")).split("=", 1)[1])
    assert sorted(p.name for p in served.iterdir()) == ["sllen"]  # not the GPU-only sllen_trt
    cluster = triton_argv(triton_bind_address="0.0.0.0", triton_model_control=True)
    assert "--grpc-address=0.0.0.0" in cluster
    assert {"--model-control-mode=explicit", "--load-model=sllen"} <= set(cluster)
