"""A compact copy of the training data, for a trainer on another machine.

    python -m sllen.pack --out .gpu_data      (then: sllen.train --data-root .gpu_data)

A lent GPU machine receives the repository and at most 64 MiB beside it, less than
``../shared/data`` (180 MB). The copy holds what ``sllen.train`` reads and nothing else:
the SICE frames that training, validation and exposure pairs use (bytes unchanged) with the
index of the full set (``index.json``: the pairs must not change with the subset), CamVid
train re-encoded as JPEG (quality ``--quality``; the PNG labels are copied as they are) and,
with ``--sources lol``, LOL-v1 ``our485`` (bytes unchanged). Every source together exceeds
64 MiB, so ``--sources`` packs a part; a trainer needs the parts merged under one root.
It is data, so it lives in an ignored folder and is never committed.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from PIL import Image

from sllen import data as D


def pack_sice(src: Path, dst: Path, val_fraction: float, exposure_every: int) -> int:
    index = D.scan_sice(src)
    pairs = [p for val in (False, True) for p in D.split_pairs(index, val_fraction, val)]
    # Exposure pairs of every training run take 53 MB; a packed copy may keep those of
    # every n-th run (the trainer trains on the pairs whose frames it finds).
    runs = D.split_runs(index, val_fraction, val=False)[::exposure_every]
    kept = {i for run in runs for i in run}
    pairs += [p for p in D.exposure_pairs(index, val_fraction, val=False) if p[0] in kept]
    needed = sorted({i for p in pairs for i in p})
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


def pack_lol(src: Path, dst: Path, split: str) -> int:
    shutil.copytree(src / split, dst / split, dirs_exist_ok=True)
    return len(list((dst / split / "low").iterdir()))


def size_mb(root: Path) -> float:
    return sum(f.stat().st_size for f in root.rglob("*") if f.is_file()) / 1e6


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Pack the training data compactly")
    parser.add_argument("--src", type=Path, default=D.DEFAULT_DATA_ROOT)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--val-fraction", type=float, default=0.12)
    parser.add_argument("--quality", type=int, default=88)
    parser.add_argument(
        "--exposure-every", type=int, default=1, help="exposure pairs of every n-th SICE run"
    )
    parser.add_argument(
        "--sources", default="sice,camvid", help="comma-separated: sice, camvid, lol"
    )
    args = parser.parse_args(argv)
    sources = set(args.sources.split(","))
    unknown = sources - {"sice", "camvid", "lol"}
    if unknown:
        parser.error(f"unknown sources: {sorted(unknown)}")
    counts = []
    if "sice" in sources:
        n = pack_sice(args.src / "sice", args.out / "sice", args.val_fraction, args.exposure_every)
        counts.append(f"{n} SICE frames")
    if "camvid" in sources:
        n = pack_camvid(args.src / "camvid", args.out / "camvid", "train", args.quality)
        counts.append(f"{n} CamVid train images")
    if "lol" in sources:
        n = pack_lol(args.src / "lol", args.out / "lol", "our485")
        counts.append(f"{n} LOL our485 pairs")
    print(f"{args.out}: {', '.join(counts)}, {size_mb(args.out):.1f} MB")


if __name__ == "__main__":
    main()
