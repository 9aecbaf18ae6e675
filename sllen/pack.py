"""A compact copy of the training data, for a trainer on another machine.

    python -m sllen.pack --out .gpu_data      (then: sllen.train --data-root .gpu_data)

A lent GPU machine receives the repository and at most 64 MiB beside it, less than
``../shared/data`` (180 MB). The copy holds what ``sllen.train`` reads and nothing else:
the SICE frames that training or validation pairs use (bytes unchanged) with the index
of the full set (``index.json``: the pairs must not change with the subset), and CamVid
train re-encoded as JPEG (quality ``--quality``; the PNG labels are copied as they are).
It is data, so it lives in an ignored folder and is never committed.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from PIL import Image

from sllen import data as D


def pack_sice(src: Path, dst: Path, val_fraction: float) -> int:
    index = D.scan_sice(src)
    needed = sorted(
        {i for val in (False, True) for p in D.split_pairs(index, val_fraction, val) for i in p}
    )
    dst.mkdir(parents=True, exist_ok=True)
    for i in needed:
        shutil.copyfile(src / f"{i}.jpg", dst / f"{i}.jpg")
    index.save(dst / D.PACKED_INDEX)
    return len(needed)


def pack_camvid(src: Path, dst: Path, split: str, quality: int) -> int:
    (dst / split).mkdir(parents=True, exist_ok=True)
    (dst / f"{split}annot").mkdir(parents=True, exist_ok=True)
    paths = sorted((src / split).glob("*.png"))
    for p in paths:
        with Image.open(p) as im:
            im.convert("RGB").save(dst / split / f"{p.stem}.jpg", quality=quality)
        shutil.copyfile(src / f"{split}annot" / p.name, dst / f"{split}annot" / p.name)
    return len(paths)


def size_mb(root: Path) -> float:
    return sum(f.stat().st_size for f in root.rglob("*") if f.is_file()) / 1e6


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Pack the training data compactly")
    parser.add_argument("--src", type=Path, default=D.DEFAULT_DATA_ROOT)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--val-fraction", type=float, default=0.12)
    parser.add_argument("--quality", type=int, default=88)
    args = parser.parse_args(argv)
    n_sice = pack_sice(args.src / "sice", args.out / "sice", args.val_fraction)
    n_cam = pack_camvid(args.src / "camvid", args.out / "camvid", "train", args.quality)
    print(
        f"{args.out}: {n_sice} SICE frames, {n_cam} CamVid train images, {size_mb(args.out):.1f} MB"
    )


if __name__ == "__main__":
    main()
