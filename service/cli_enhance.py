"""`sllen enhance`: one photo or a whole folder through a running service.

A folder is processed with bounded concurrency and a progress bar; every photo is retried on
transient errors (honouring Retry-After) by the client library; failures are listed at the end
and make the exit status non-zero.
"""

from __future__ import annotations

import argparse
import sys
import threading
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

from service.client import EnhanceResult, SllenClient, SllenError

PHOTO_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".heic", ".heif", ".avif"}
FORMATS = ["auto", "png", "jpeg", "webp", "avif"]
# An output file named .png gets a PNG, whatever was uploaded; a folder's outputs take the
# extension of the format the service answered in.
_BY_SUFFIX = {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg", ".webp": "webp", ".avif": "avif"}
_SUFFIX_OF = {"image/png": "png", "image/jpeg": "jpeg", "image/webp": "webp", "image/avif": "avif"}


class Progress:
    def __init__(self, total: int) -> None:
        self.total, self.done, self.failed = total, 0, 0
        self._lock = threading.Lock()
        self._tty = sys.stderr.isatty()

    def step(self, ok: bool, name: str) -> None:
        with self._lock:
            self.done += 1
            self.failed += not ok
            filled = int(30 * self.done / max(self.total, 1))
            line = f"[{'#' * filled}{'.' * (30 - filled)}] {self.done}/{self.total}"
            line += f" ({self.failed} failed)" if self.failed else ""
            if self._tty:
                end = "\n" if self.done == self.total else ""
                sys.stderr.write(f"\r{line}{end}")
            else:
                sys.stderr.write(f"{line} {name}\n")
            sys.stderr.flush()


def _one(
    client: SllenClient, photo: Path, args: argparse.Namespace, want_mask: bool, fmt: str
) -> EnhanceResult:
    kwargs = {
        "mask": want_mask,
        "format": fmt,
        "quality": args.quality,
        "metadata": args.metadata,
        "strength": args.strength,
    }
    if args.jobs:
        return client.wait(client.submit(photo, **kwargs))
    return client.enhance(photo, **kwargs)


def _write(result: EnhanceResult, out: Path, mask_out: Path | None) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(result.image)
    if mask_out is not None and result.mask is not None:
        mask_out.parent.mkdir(parents=True, exist_ok=True)
        mask_out.write_bytes(result.mask)


def run(args: argparse.Namespace, default_url: str) -> int:
    source, output = Path(args.photo), Path(args.output)
    mask_dest = Path(args.mask) if args.mask else None
    with SllenClient(args.url or default_url, api_key=args.api_key) as client:
        if source.is_file():
            fmt = args.format or _BY_SUFFIX.get(output.suffix.lower(), "auto")
            try:
                _write(_one(client, source, args, mask_dest is not None, fmt), output, mask_dest)
            except SllenError as exc:
                print(f"{source}: {exc}", file=sys.stderr)
                return 1
            return 0
        photos = sorted(p for p in source.rglob("*") if p.suffix.lower() in PHOTO_SUFFIXES)
        return _folder(client, photos, source, output, mask_dest, args)


def _folder(
    client: SllenClient,
    photos: list[Path],
    source: Path,
    output: Path,
    mask_dest: Path | None,
    args: argparse.Namespace,
) -> int:
    progress = Progress(len(photos))
    failures: list[str] = []

    def task(photo: Path) -> None:
        result = _one(client, photo, args, mask_dest is not None, args.format or "auto")
        suffix = _SUFFIX_OF.get(result.content_type, "img")
        rel = photo.relative_to(source).with_suffix(f".{suffix}")
        mask_out = mask_dest / rel.with_suffix(".png") if mask_dest else None
        _write(result, output / rel, mask_out)

    with ThreadPoolExecutor(max_workers=args.concurrency) as pool:
        futures = {pool.submit(task, p): p for p in photos}
        for future in as_completed(futures):
            error = future.exception()
            if error is not None:
                failures.append(f"{futures[future]}: {error}")
            progress.step(error is None, futures[future].name)
    for line in failures:
        print(line, file=sys.stderr)
    return 1 if failures else 0


def _strength(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError("strength is between 0 and 1")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("photo", help="a photo, or a folder of photos (searched recursively)")
    parser.add_argument("-o", "--output", required=True, help="output file, or folder")
    parser.add_argument("--mask", help="also write the mask PNG here (a folder for a folder)")
    parser.add_argument(
        "--format",
        choices=FORMATS,
        help="auto: the photo's own family (HEIC as JPEG, BMP as PNG); default: from the output "
        "file's extension, or auto for a folder",
    )
    parser.add_argument("--quality", type=int, help="1-100, for jpeg, webp and avif")
    parser.add_argument(
        "--strength", type=_strength, default=1.0, help="0 (the photo as sent) to 1 (default)"
    )
    parser.add_argument("--metadata", default="strip", choices=["strip", "keep", "keep-all"])
    parser.add_argument("--jobs", action="store_true", help="use async jobs (submit, then poll)")
    parser.add_argument("--concurrency", type=int, default=4, help="photos in flight at once")
    parser.add_argument("--url", help="service base URL (default: the configured host and port)")
    parser.add_argument("--api-key", help="API key, if the service needs one")
