"""Training data: SICE exposure pairs and CamVid (dark, normal, label) triplets.

Everything is decoded once into uint8 arrays in memory and sampled in-process, so both
CPU cores stay on the network. Data is read from ``<repo>/../shared/data`` (read-only);
nothing from it is ever written into the repository, only a small run-index cache
under ``.cache/``.

SICE has no sequence index: runs of consecutive ids are one tripod scene at rising
exposure. A run ends at an id gap or where the gradient-magnitude correlation between
neighbouring (downscaled, mean-normalised) frames drops below ``RUN_BREAK_CORR``.
Pairs are (under-exposed frame, the well-exposed frame of its run nearest luma 120),
kept only if the two frames also correlate directly. Validation is a deterministic
subset of runs (scenes), never of frames.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from sllen.model import IGNORE_INDEX

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA_ROOT = REPO_ROOT.parent / "shared" / "data"
CACHE_DIR = REPO_ROOT / ".cache"

THUMB = 64
RUN_BREAK_CORR = 0.45
PAIR_MIN_CORR = 0.5
LOW_LUMA = (4.0, 45.0)
HIGH_LUMA = (90.0, 170.0)
TARGET_LUMA = 120.0
EXPOSURE_LUMA = 0.467  # 119/255: the SICE training targets' mean luma (sllen.studies.ceiling)
PACKED_INDEX = "index.json"

# SegNet median-frequency weights, CamVid ids 0..10.
CAMVID_CLASS_WEIGHTS = (
    0.2595,
    0.1826,
    4.5640,
    0.1417,
    0.9051,
    0.3826,
    9.6446,
    1.8418,
    0.6823,
    6.2478,
    7.3614,
)
DUSK_PREFIX = "0001TP_"
# CamVid val has no dusk frames, so the last DUSK_HOLDOUT frames of the (sorted, i.e.
# temporal) 0001TP_ train sequence are held out from training as one contiguous block
# for the real-dusk mIoU: neighbouring video frames would leak if picked at random.
DUSK_HOLDOUT = 16
DUSK_MODES = ("all", "drop_holdout", "only_holdout")


def dusk_holdout(names: list[str]) -> set[str]:
    """The held-out block: the last DUSK_HOLDOUT dusk frames in file-name (time) order."""
    return set(sorted(n for n in names if n.startswith(DUSK_PREFIX))[-DUSK_HOLDOUT:])


def luma(rgb: np.ndarray) -> np.ndarray:
    """BT.601 luma of uint8/float RGB [..., 3] -> [...] (same scale as the input)."""
    return rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114


def load_rgb(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def load_many(paths: list[Path], threads: int = 2) -> np.ndarray:
    """Decode images of one size into a uint8 [N, H, W, C] array."""
    with ThreadPoolExecutor(threads) as ex:
        return np.stack(list(ex.map(load_rgb, paths)))


# --------------------------------------------------------------------------- SICE runs


def _thumb(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        im.draft("L", (THUMB, THUMB))
        g = im.convert("L").resize((THUMB, THUMB), Image.Resampling.BILINEAR)
    return np.asarray(g, dtype=np.float32)


def grad_corr(a: np.ndarray, b: np.ndarray) -> float:
    """Correlation of gradient magnitudes of two mean-normalised grayscale thumbnails."""

    def gm(x: np.ndarray) -> np.ndarray:
        gy, gx = np.gradient(x / (x.mean() + 1.0))
        return np.hypot(gx, gy).ravel()

    return float(np.corrcoef(gm(a), gm(b))[0, 1])


@dataclass(frozen=True)
class SiceIndex:
    ids: list[int]
    lumas: list[float]  # mean luma of each id, 0..255
    runs: list[list[int]]  # ids, grouped by scene
    pairs: list[tuple[int, int]]  # (low id, high id)

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.__dict__))

    @classmethod
    def read(cls, path: Path) -> SiceIndex:
        d = json.loads(path.read_text())
        return cls(d["ids"], d["lumas"], d["runs"], [tuple(p) for p in d["pairs"]])


def _segment_runs(ids: list[int], thumbs: list[np.ndarray]) -> list[list[int]]:
    runs: list[list[int]] = [[ids[0]]]
    for k in range(1, len(ids)):
        gap = ids[k] != ids[k - 1] + 1
        if gap or grad_corr(thumbs[k - 1], thumbs[k]) < RUN_BREAK_CORR:
            runs.append([])
        runs[-1].append(ids[k])
    return runs


def _pairs(
    runs: list[list[int]], luma_of: dict[int, float], thumb_of: dict[int, np.ndarray]
) -> list[tuple[int, int]]:
    pairs = []
    for run in runs:
        highs = [i for i in run if HIGH_LUMA[0] <= luma_of[i] <= HIGH_LUMA[1]]
        if not highs:
            continue
        high = min(highs, key=lambda i: abs(luma_of[i] - TARGET_LUMA))
        for low in run:
            dark = LOW_LUMA[0] <= luma_of[low] <= LOW_LUMA[1]
            # A direct check guards against two scenes merged into one run.
            if dark and grad_corr(thumb_of[low], thumb_of[high]) >= PAIR_MIN_CORR:
                pairs.append((low, high))
    return pairs


def scan_sice(root: Path) -> SiceIndex:
    """Segment SICE into runs and pairs; cached in .cache/ keyed by the file list.

    A packed copy (``sllen.pack``) holds only the frames that pairs use, so it carries
    the index of the full set as ``index.json`` instead of re-deriving a different one.
    """
    packed = root / PACKED_INDEX
    if packed.exists():
        return SiceIndex.read(packed)
    ids = sorted(int(p.stem) for p in root.glob("*.jpg"))
    key = hashlib.sha1(json.dumps([str(root), ids, RUN_BREAK_CORR, PAIR_MIN_CORR]).encode())
    cache = CACHE_DIR / f"sice_index_{key.hexdigest()[:12]}.json"
    if cache.exists():
        return SiceIndex.read(cache)
    with ThreadPoolExecutor(2) as ex:
        thumbs = list(ex.map(_thumb, [root / f"{i}.jpg" for i in ids]))
    lumas = [float(t.mean()) for t in thumbs]
    runs = _segment_runs(ids, thumbs)
    pairs = _pairs(runs, dict(zip(ids, lumas, strict=True)), dict(zip(ids, thumbs, strict=True)))
    index = SiceIndex(ids, lumas, runs, pairs)
    CACHE_DIR.mkdir(exist_ok=True)
    index.save(cache)
    log.info(
        "SICE: %d ids, %d runs, %d pairs (cached in %s)", len(ids), len(runs), len(pairs), cache
    )
    return index


def is_val_run(run: list[int], val_fraction: float) -> bool:
    """Deterministic scene split: a hash of the run's first id, not its position."""
    return zlib.crc32(str(run[0]).encode()) % 1000 < val_fraction * 1000


def split_pairs(index: SiceIndex, val_fraction: float, val: bool) -> list[tuple[int, int]]:
    run_of = {i: k for k, run in enumerate(index.runs) for i in run}
    return [p for p in index.pairs if is_val_run(index.runs[run_of[p[0]]], val_fraction) == val]


class SicePairs:
    """SICE pairs in memory: ``images`` uint8 [M, H, W, 3]; pair k = (low_idx[k], high_idx[k])."""

    def __init__(self, images: np.ndarray, low_idx: np.ndarray, high_idx: np.ndarray) -> None:
        self.images = images
        self.low_idx = low_idx
        self.high_idx = high_idx
        self._shrunk: dict[tuple[int, int], np.ndarray] = {}  # whole frames are reused
        self._frame_luma: dict[int, float] = {}

    @classmethod
    def load(cls, root: Path, val_fraction: float, val: bool) -> SicePairs:
        pairs = split_pairs(scan_sice(root), val_fraction, val)
        needed = sorted({i for p in pairs for i in p})
        slot = {i: k for k, i in enumerate(needed)}
        images = load_many([root / f"{i}.jpg" for i in needed])  # [M, 512, 512, 3]
        log.info(
            "SICE %s: %d pairs from %d images", "val" if val else "train", len(pairs), len(needed)
        )
        return cls(
            images, np.array([slot[a] for a, _ in pairs]), np.array([slot[b] for _, b in pairs])
        )

    def __len__(self) -> int:
        return len(self.low_idx)

    def pair(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        return self.images[self.low_idx[k]], self.images[self.high_idx[k]]

    def shrunk_pair(self, k: int, size: int) -> tuple[np.ndarray, np.ndarray]:
        """Pair k, whole frames shrunk to ``size`` (memoised: the filter is 3 ms a frame)."""
        out = []
        for i in (int(self.low_idx[k]), int(self.high_idx[k])):
            if (i, size) not in self._shrunk:
                self._shrunk[i, size] = _shrink(self.images[i], size)
            out.append(self._shrunk[i, size])
        return out[0], out[1]

    def frame_luma(self, i: int) -> float:
        """Mean luma (0..1) of the whole frame ``images[i]``, memoised."""
        if i not in self._frame_luma:
            self._frame_luma[i] = float(luma(self.images[i].astype(np.float32)).mean() / 255.0)
        return self._frame_luma[i]

    def sample(
        self,
        rng: np.random.Generator,
        batch: int,
        crop: int,
        whole_prob: float = 0.0,
        dihedral: bool = False,
        device: torch.device | str = "cpu",
        exposure_shrink: float = 0.0,
        exposure_luma: float = EXPOSURE_LUMA,
        degrade_prob: float = 0.0,
    ) -> tuple[Tensor, Tensor]:
        """Aligned samples with flips -> (low, high) float [B, 3, crop, crop] in [0, 1].

        Each sample is a random crop or, with ``whole_prob``, the whole frame shrunk to
        ``crop`` (area filter): crops alone never show the network a whole scene, yet the
        right exposure is a whole-scene decision. ``dihedral`` adds vertical flips and
        transposes (8 orientations instead of 2) against over-fitting the few scenes.

        ``exposure_shrink`` s > 0 scales each target by (exposure_luma / L) ** s, L its whole
        frame's mean luma: a target is the frame of its run nearest a fixed luma, so how much
        brighter or darker than that level it came out is chance the input cannot show, and
        learning it per scene only over-fits (s = 1: every target at ``exposure_luma``).

        With ``degrade_prob`` an input gets noise and JPEG compression (``degrade``) after
        cropping, so its 8x8 blocks line up with the sample's edge as a photo's do.
        """
        ks = rng.integers(0, len(self), size=batch)
        lows, highs = [], []
        for k in ks:
            low, high = self.pair(int(k))
            flip = _random_dihedral(rng) if dihedral else _random_flip(rng)
            if rng.random() < whole_prob:
                low, high = self.shrunk_pair(int(k), crop)
            else:
                sl = _random_crop(rng, low.shape[0], low.shape[1], crop)
                low, high = low[sl], high[sl]
            low = flip(low)
            if rng.random() < degrade_prob:
                low = degrade(np.ascontiguousarray(low), rng)
            lows.append(low)
            highs.append(flip(high))
        low_t, high_t = to_tensor(np.stack(lows), device), to_tensor(np.stack(highs), device)
        if exposure_shrink > 0:
            lumas = [self.frame_luma(int(self.high_idx[k])) for k in ks]
            gains = [(exposure_luma / max(lum, 1e-3)) ** exposure_shrink for lum in lumas]
            gain = torch.tensor(gains, dtype=high_t.dtype, device=high_t.device).view(-1, 1, 1, 1)
            high_t = (high_t * gain).clamp(0.0, 1.0)
        return low_t, high_t


def split_runs(index: SiceIndex, val_fraction: float, val: bool) -> list[list[int]]:
    return [run for run in index.runs if is_val_run(run, val_fraction) == val]


def exposure_pairs(
    index: SiceIndex, val_fraction: float, val: bool, half_max: float = HIGH_LUMA[0]
) -> list[tuple[int, int]]:
    """(input, target) pairs that teach a model to leave good exposures alone.

    Every well-exposed frame maps to itself, and every frame of a run brighter than the
    well-exposed range, or between the dark range and ``half_max``, maps to the run's
    target (the well-exposed frame nearest luma 120), so over- and half-exposed inputs are
    pulled to a normal exposure instead of brightened. Frames from ``half_max`` up to the
    well-exposed range are left out: a street photo at mean luma 75 (CamVid's daylight) is
    one users call well exposed, and a SICE frame there brightened 1.6x says the opposite.
    """
    luma_of = dict(zip(index.ids, index.lumas, strict=True))
    pairs = []
    for run in split_runs(index, val_fraction, val):
        normal = [i for i in run if HIGH_LUMA[0] <= luma_of[i] <= HIGH_LUMA[1]]
        if not normal:
            continue
        target = min(normal, key=lambda i: abs(luma_of[i] - TARGET_LUMA))
        pairs += [(i, i) for i in normal]
        pairs += [
            (i, target)
            for i in run
            if luma_of[i] > HIGH_LUMA[1] or LOW_LUMA[1] < luma_of[i] < min(half_max, HIGH_LUMA[0])
        ]
    return pairs


def sice_frames(
    index: SiceIndex, val_fraction: float, val: bool, lo: float, hi: float
) -> list[int]:
    """Ids of the split's frames whose mean luma (0..255) lies in [lo, hi]."""
    luma_of = dict(zip(index.ids, index.lumas, strict=True))
    return [
        i for run in split_runs(index, val_fraction, val) for i in run if lo <= luma_of[i] <= hi
    ]


def load_exposure_pairs(
    root: Path, val_fraction: float, val: bool, half_max: float = HIGH_LUMA[0]
) -> SicePairs:
    pairs = exposure_pairs(scan_sice(root), val_fraction, val, half_max)
    if (root / PACKED_INDEX).exists():  # a packed copy may hold some runs' pairs only
        total = len(pairs)
        pairs = [p for p in pairs if all((root / f"{i}.jpg").exists() for i in p)]
        log.info("packed SICE copy: %d of %d exposure pairs", len(pairs), total)
    needed = sorted({i for p in pairs for i in p})
    slot = {i: k for k, i in enumerate(needed)}
    images = load_many([root / f"{i}.jpg" for i in needed])
    log.info("SICE exposure pairs: %d from %d images", len(pairs), len(needed))
    return SicePairs(
        images, np.array([slot[a] for a, _ in pairs]), np.array([slot[b] for _, b in pairs])
    )


# --------------------------------------------------------------------------- LOL


def load_lol(root: Path, split: str) -> SicePairs:
    """LOL-v1 ``our485`` (training) or ``eval15`` (test only) as (low, high) pairs."""
    names = sorted(p.name for p in (root / split / "low").iterdir())
    lows = load_many([root / split / "low" / n for n in names])
    highs = load_many([root / split / "high" / n for n in names])
    n = len(names)
    log.info("LOL %s: %d pairs", split, n)
    return SicePairs(np.concatenate([lows, highs]), np.arange(n), np.arange(n, 2 * n))


def darker_than(pairs: SicePairs, max_luma: float) -> SicePairs:
    """The pairs whose input's mean luma (0-255) is below ``max_luma``.

    A few LOL "low" frames are at luma 52-83, lighter than the darkest normal-light
    references; paired with brighter targets they teach the exposure gate to brighten
    photos that are already normally exposed.
    """
    keep = np.array(
        [pairs.frame_luma(int(i)) * 255.0 < max_luma for i in pairs.low_idx], dtype=bool
    )
    log.info("kept %d of %d pairs with inputs below luma %.0f", keep.sum(), len(keep), max_luma)
    return SicePairs(pairs.images, pairs.low_idx[keep], pairs.high_idx[keep])


def identity_pairs(images: np.ndarray) -> SicePairs:
    """Each image mapped to itself (well-exposed photos must come back unchanged)."""
    k = np.arange(len(images))
    return SicePairs(images, k, k)


# --------------------------------------------------------------------------- degradation


def jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    """uint8 [H, W, 3] through a JPEG round trip at ``quality`` (4:2:0, as phones save)."""
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="JPEG", quality=int(quality))
    buf.seek(0)
    with Image.open(buf) as im:
        return np.asarray(im.convert("RGB"))


def add_noise(image: np.ndarray, rng: np.random.Generator, shot: float, read: float) -> np.ndarray:
    """Signal-dependent Poisson-Gaussian noise on uint8 sRGB, quantised back to uint8."""
    x = image.astype(np.float32) / 255.0
    sigma = np.sqrt(shot * x + read**2)
    y = x + rng.standard_normal(x.shape, dtype=np.float32) * sigma
    return np.round(np.clip(y, 0.0, 1.0) * 255.0).astype(np.uint8)


def degrade(
    image: np.ndarray, rng: np.random.Generator, quality: tuple[int, int] = (30, 95)
) -> np.ndarray:
    """A dark photo as a phone or dashcam delivers it: sensor noise, then JPEG."""
    noisy = add_noise(
        image, rng, shot=float(rng.uniform(0, 2e-3)), read=float(rng.uniform(0, 4e-3))
    )
    return jpeg(noisy, int(rng.integers(quality[0], quality[1] + 1)))


# --------------------------------------------------------------------------- CamVid


class CamVid:
    """CamVid split in memory: ``images`` uint8 [N, 360, 480, 3], ``labels`` uint8 [N, 360, 480]."""

    def __init__(self, names: list[str], images: np.ndarray, labels: np.ndarray) -> None:
        self.names = names
        self.images = images
        self.labels = labels
        self.dusk = np.array([n.startswith(DUSK_PREFIX) for n in names])

    @classmethod
    def load(cls, root: Path, split: str, dusk: str = "all") -> CamVid:
        """``dusk``: "all", "drop_holdout" (training) or "only_holdout" (dusk evaluation)."""
        if dusk not in DUSK_MODES:
            raise ValueError(f"dusk must be one of {DUSK_MODES}")
        # A packed copy stores the photos as JPEG (sllen.pack); labels stay lossless PNG.
        paths = sorted((root / split).glob("*.png")) or sorted((root / split).glob("*.jpg"))
        held = dusk_holdout([p.stem for p in paths])
        if dusk == "drop_holdout":
            paths = [p for p in paths if p.stem not in held]
        elif dusk == "only_holdout":
            paths = [p for p in paths if p.stem in held]
        names = [p.stem + ".png" for p in paths]
        labels = load_many([root / f"{split}annot" / n for n in names])[..., 0]
        data = cls(names, load_many(paths), labels)
        log.info("CamVid %s: %d images (%d dusk)", split, len(paths), int(data.dusk.sum()))
        return data

    def __len__(self) -> int:
        return len(self.names)

    def sample(
        self,
        rng: np.random.Generator,
        batch: int,
        crop: int,
        daylight_only: bool = False,
        device: torch.device | str = "cpu",
    ) -> tuple[Tensor, Tensor, Tensor]:
        """-> (images float [B, 3, c, c], labels int64 [B, c, c], dusk bool [B])."""
        pool = np.flatnonzero(~self.dusk) if daylight_only else np.arange(len(self))
        ks = rng.choice(pool, size=batch)
        ims, labs = [], []
        for k in ks:
            sl = _random_crop(rng, self.images.shape[1], self.images.shape[2], crop)
            flip = _random_flip(rng)
            ims.append(flip(self.images[k][sl]))
            labs.append(flip(self.labels[k][sl]))
        labels = torch.from_numpy(np.stack(labs)).to(device).long()
        dusk = torch.from_numpy(self.dusk[ks]).to(device)
        return to_tensor(np.stack(ims), device), labels, dusk


def darken(x: Tensor, gen: torch.Generator, strength: float = 1.0) -> Tensor:
    """LOL-v2-style synthetic low light on sRGB [B, 3, H, W] in [0, 1].

    Per image: gamma in [1.5, 3.5], gain in [0.05, 0.35], then signal-dependent
    Poisson-Gaussian noise and 8-bit quantisation. ``strength`` < 1 interpolates the
    gamma and gain towards identity (for the already-dark dusk frames).
    """
    b = x.shape[0]

    def u(lo: float, hi: float) -> Tensor:
        return lo + (hi - lo) * torch.rand(b, 1, 1, 1, generator=gen, device=x.device)

    gamma = 1.0 + strength * (u(1.5, 3.5) - 1.0)
    gain = 1.0 + strength * (u(0.05, 0.35) - 1.0)
    y = gain * x.clamp_min(0.0) ** gamma
    shot, read = u(1e-4, 4e-3), u(5e-4, 8e-3)
    y = y + torch.randn(y.shape, generator=gen, device=x.device) * torch.sqrt(shot * y + read**2)
    return torch.round(y.clamp(0.0, 1.0) * 255.0) / 255.0


def dim(x: Tensor, gen: torch.Generator) -> Tensor:
    """A mildly dim photo: sRGB gain in [0.3, 0.6], light sensor noise, 8-bit quantisation."""
    b = x.shape[0]

    def u(lo: float, hi: float) -> Tensor:
        return lo + (hi - lo) * torch.rand(b, 1, 1, 1, generator=gen, device=x.device)

    y = u(0.3, 0.6) * x.clamp_min(0.0)
    shot, read = u(1e-4, 2e-3), u(5e-4, 4e-3)
    y = y + torch.randn(y.shape, generator=gen, device=x.device) * torch.sqrt(shot * y + read**2)
    return torch.round(y.clamp(0.0, 1.0) * 255.0) / 255.0


# --------------------------------------------------------------------------- helpers


def _random_crop(rng: np.random.Generator, h: int, w: int, crop: int) -> tuple[slice, slice]:
    top = int(rng.integers(0, h - crop + 1))
    left = int(rng.integers(0, w - crop + 1))
    return slice(top, top + crop), slice(left, left + crop)


def _shrink(image: np.ndarray, size: int) -> np.ndarray:
    """uint8 [H, W, 3] -> [size, size, 3] with a box (area) filter."""
    im = Image.fromarray(image).resize((size, size), Image.Resampling.BOX)
    return np.asarray(im)


def _random_flip(rng: np.random.Generator):  # type: ignore[no-untyped-def]
    h = bool(rng.integers(2))
    return (lambda a: a[:, ::-1]) if h else (lambda a: a)


def _random_dihedral(rng: np.random.Generator):  # type: ignore[no-untyped-def]
    """One of the 8 flips/rotations of a square [H, W, C] array, drawn uniformly."""
    h, v, t = (bool(b) for b in rng.integers(2, size=3))

    def apply(a: np.ndarray) -> np.ndarray:
        a = a[:, ::-1] if h else a
        a = a[::-1] if v else a
        return a.swapaxes(0, 1) if t else a

    return apply


def to_tensor(batch: np.ndarray, device: torch.device | str = "cpu") -> Tensor:
    """uint8 [B, H, W, 3] -> float [B, 3, H, W] in [0, 1] (channels_last memory).

    The uint8 batch crosses to ``device`` before the float conversion: a quarter of the bytes.
    """
    t = torch.from_numpy(np.ascontiguousarray(batch)).to(device, non_blocking=True)
    t = t.permute(0, 3, 1, 2).float() / 255.0
    return t.contiguous(memory_format=torch.channels_last)


def class_weights() -> Tensor:
    return torch.tensor(CAMVID_CLASS_WEIGHTS, dtype=torch.float32)


assert len(CAMVID_CLASS_WEIGHTS) == IGNORE_INDEX
