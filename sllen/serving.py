"""The model as Triton serves it: its config.pbtxt and its ONNX Runtime session options.

The options are defined once, beside Triton's model.py (``model_repository/sllen/1/
ort_options.py``: the python backend imports from the model's folder only); export, evaluation
and the benchmarks load that very file from here, so every ORT session in the project matches.
"""

from __future__ import annotations

import importlib.util
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import ModuleType
from typing import Any

import onnxruntime as ort
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

MODEL_DIR = Path(__file__).resolve().parents[1] / "model_repository" / "sllen"
ORT_OPTIONS_PY = MODEL_DIR / "1" / "ort_options.py"


def _load_ort_options() -> ModuleType:
    spec = importlib.util.spec_from_file_location("sllen_ort_options", ORT_OPTIONS_PY)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {ORT_OPTIONS_PY}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_ORT_OPTIONS = _load_ort_options()


def session_options(
    intra_threads: int = 0, inter_threads: int = 1, spinning: bool = False
) -> ort.SessionOptions:
    """The options Triton's model.py opens its sessions with (minus its process-wide arena)."""
    options: ort.SessionOptions = _ORT_OPTIONS.session_options(
        intra_threads, inter_threads, spinning
    )
    return options


def open_session(
    model: Path | bytes, intra_threads: int = 0, spinning: bool = False
) -> ort.InferenceSession:
    """A CPU session on an ONNX file or its bytes, with the served options."""
    source = str(model) if isinstance(model, Path) else model
    options = session_options(intra_threads, spinning=spinning)
    # ORT sets flush-to-zero on the thread that builds a session with set_denormal_as_zero: a
    # short-lived thread keeps the caller's floating-point state (hypothesis refuses to run in
    # a process that cannot represent subnormals).
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(
            ort.InferenceSession, source, options, providers=["CPUExecutionProvider"]
        ).result()


def read_model_config(path: Path) -> Any:
    """A config.pbtxt as Triton reads it: a ``ModelConfig`` protobuf message."""
    return text_format.Parse(path.read_text(), model_config_pb2.ModelConfig())


def served_onnx(model_dir: Path = MODEL_DIR, mask: bool = False) -> Path:
    """The ONNX file Triton runs for a request with or without a mask (config.pbtxt's
    ``onnx_file_enhanced_only`` serves requests that ask for no mask)."""
    params = read_model_config(model_dir / "config.pbtxt").parameters
    keys = ["onnx_file"] if mask else ["onnx_file_enhanced_only", "onnx_file"]
    for key in keys:
        if key in params and params[key].string_value:
            return model_dir / "1" / params[key].string_value
    raise ValueError(f"no onnx_file parameter in {model_dir / 'config.pbtxt'}")
