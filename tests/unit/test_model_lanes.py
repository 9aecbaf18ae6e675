"""model.py's choice between one image per core (lanes) and every core on one image.

model.py runs inside Triton's python backend; its scheduling arithmetic is plain Python, so it
is loaded here with an empty stand-in for the backend's utility module (never called) and, as the
backend does, its own folder on sys.path.
"""

from __future__ import annotations

import importlib.util
import sys
import types
from collections.abc import Callable

import pytest

from service.config import PROJECT_ROOT

MODEL_PY = PROJECT_ROOT / "model_repository" / "sllen" / "1" / "model.py"
VGA, MID, FULL_HD = 600 * 400, 1024 * 768, 1920 * 1080


@pytest.fixture(scope="module")
def lane_split() -> Callable[..., int]:
    saved = sys.modules.get("triton_python_backend_utils")
    sys.modules["triton_python_backend_utils"] = types.ModuleType("triton_python_backend_utils")
    sys.path.insert(0, str(MODEL_PY.parent))
    try:
        spec = importlib.util.spec_from_file_location("sllen_model_py", MODEL_PY)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(MODEL_PY.parent))
        sys.modules.pop("ort_options", None)
        if saved is None:
            del sys.modules["triton_python_backend_utils"]
        else:
            sys.modules["triton_python_backend_utils"] = saved

    def split(pixels: list[int], lanes: int = 2) -> int:
        return int(module.lane_split(sorted(pixels, reverse=True), lanes, 1.6, 0.18))

    return split


def test_a_lone_image_runs_on_every_core(lane_split: Callable[..., int]) -> None:
    assert lane_split([VGA]) == 0
    assert lane_split([FULL_HD]) == 0


def test_equal_images_share_the_lanes(lane_split: Callable[..., int]) -> None:
    assert lane_split([VGA, VGA]) == 2
    assert lane_split([VGA] * 4) == 4
    assert lane_split([VGA] * 8) == 8


def test_an_odd_one_out_finishes_on_every_core(lane_split: Callable[..., int]) -> None:
    # Two rounds of lanes would leave one core idle for the third image's whole run.
    assert lane_split([VGA] * 3) == 2


def test_a_big_photo_beside_a_small_one_runs_first_on_every_core(
    lane_split: Callable[..., int],
) -> None:
    # In lanes the small image's core would idle while the big one runs 2x slower on one core.
    assert lane_split([FULL_HD, VGA]) == 0
    assert lane_split([FULL_HD, FULL_HD]) == 2  # still 1.02x the throughput side by side
    assert lane_split([MID, VGA, VGA, VGA]) == 4  # the small ones fill the other lane


def test_one_lane_means_every_core_always(lane_split: Callable[..., int]) -> None:
    assert lane_split([VGA] * 4, lanes=1) == 0
