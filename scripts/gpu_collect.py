"""Gather GPU runs for the trip back from a lent machine (at most 8 files of 16 MiB).

    python3 scripts/gpu_collect.py RUNS OUT

Each run's last.pt goes back whole if it fits, else as its EMA weights alone (enough to
evaluate and export, not to resume); every run's logs go back as one tarball.
"""

import sys
import tarfile
from pathlib import Path

import torch

LIMIT = 15 * 2**20


def main(runs: Path, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with tarfile.open(out / "logs.tar.gz", "w:gz") as tar:
        for run in sorted(p for p in runs.iterdir() if p.is_dir()):
            for log in run.glob("*.log"):
                tar.add(log, arcname=f"{run.name}/{log.name}")
            ckpt = run / "last.pt"
            if not ckpt.exists():
                continue
            if ckpt.stat().st_size <= LIMIT:
                (out / f"{run.name}.pt").write_bytes(ckpt.read_bytes())
                continue
            state = torch.load(ckpt, map_location="cpu", weights_only=False)
            keep = {k: state[k] for k in ("config", "step", "ema") if k in state}
            torch.save(keep, out / f"{run.name}.ema.pt")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
