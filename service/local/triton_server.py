"""A real tritonserver without Docker: the binary and python backend that ``nvidia-pytriton`` ships.

The wheel keeps one python-backend stub per Python version; Triton wants the stub beside
``libtriton_python.so`` in a backend directory, so we assemble one under the state directory. The
stub finds its interpreter through PATH (it ignores PYTHONPATH): the venv's bin goes first.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

from service.config import Settings


class TritonNotInstalled(RuntimeError):
    pass


@dataclass(frozen=True, slots=True)
class TritonLaunch:
    argv: list[str]
    env: dict[str, str]


def _pytriton_root() -> Path:
    spec = importlib.util.find_spec("pytriton")
    if spec is None or not spec.submodule_search_locations:
        raise TritonNotInstalled("nvidia-pytriton is not installed (pip install '.[triton]')")
    return Path(next(iter(spec.submodule_search_locations))) / "tritonserver"


def prepare_backends(state_dir: Path) -> Path:
    """Build ``<state_dir>/triton/backends/python`` with the stub for this Python."""
    root = _pytriton_root()
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    stub = root / "python_backend_stubs" / version / "triton_python_backend_stub"
    if not stub.exists():
        raise TritonNotInstalled(f"pytriton ships no python-backend stub for Python {version}")
    backends = state_dir / "triton" / "backends"
    target = backends / "python"
    target.mkdir(parents=True, exist_ok=True)
    for item in (root / "backends" / "python").iterdir():
        if item.is_file():
            shutil.copy2(item, target / item.name)
    shutil.copy2(stub, target / stub.name)
    return backends


def served_repository(model_repository: Path, state_dir: Path, models: tuple[str, ...]) -> Path:
    """A repository holding only ``models`` (links into ``model_repository``): without model
    control Triton loads every model it finds, and the repository also holds GPU-only ones."""
    served = state_dir / "triton" / "models"
    served.mkdir(parents=True, exist_ok=True)
    for entry in served.iterdir():
        if entry.name not in models:
            entry.unlink()
    for name in models:
        link, target = served / name, (model_repository / name).resolve()
        if link.is_symlink() and link.readlink() == target:
            continue
        link.unlink(missing_ok=True)
        link.symlink_to(target, target_is_directory=True)
    return served


def build_launch(
    *,
    model_repository: Path,
    state_dir: Path,
    grpc_port: int,
    http_port: int,
    metrics_port: int,
    models: tuple[str, ...] = ("sllen",),
    bind_address: str = "127.0.0.1",
    model_control: bool = False,
    log_verbose: int = 0,
) -> TritonLaunch:
    """Triton on the named models only, listening on ``bind_address``. Without
    ``model_control`` its repository API refuses every load and unload."""
    root = _pytriton_root()
    backends = prepare_backends(state_dir)
    libs = root.parent.parent / "nvidia_pytriton.libs"
    env = dict(os.environ)
    lib_path = [str(libs), sysconfig.get_config_var("LIBDIR") or ""]
    if env.get("LD_LIBRARY_PATH"):
        lib_path.append(env["LD_LIBRARY_PATH"])
    env["LD_LIBRARY_PATH"] = ":".join(p for p in lib_path if p)
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"
    if model_control:
        control = [
            f"--model-repository={model_repository}",
            "--model-control-mode=explicit",
            *(f"--load-model={name}" for name in models),
        ]
    else:
        served = served_repository(model_repository, state_dir, models)
        control = [f"--model-repository={served}", "--model-control-mode=none"]
    argv = [
        str(root / "bin" / "tritonserver"),
        *control,
        f"--backend-directory={backends}",
        f"--grpc-address={bind_address}",
        f"--grpc-port={grpc_port}",
        f"--http-address={bind_address}",
        f"--http-port={http_port}",
        f"--metrics-address={bind_address}",
        f"--metrics-port={metrics_port}",
        "--allow-http=true",
        "--allow-metrics=true",
        "--allow-gpu-metrics=false",
        "--strict-readiness=true",
        "--exit-on-error=true",
        f"--log-verbose={log_verbose}",
    ]
    return TritonLaunch(argv=argv, env=env)


def launch_for(settings: Settings) -> TritonLaunch:
    """The local Triton that these settings describe (ports, address, repository, the model)."""
    return build_launch(
        model_repository=settings.model_repository,
        state_dir=settings.state_dir,
        grpc_port=settings.triton_grpc_port,
        http_port=settings.triton_http_port,
        metrics_port=settings.triton_metrics_port,
        models=(settings.triton_model,),
        bind_address=settings.triton_bind_address,
        model_control=settings.triton_model_control,
    )
