"""Image bytes in, arrays out, and back: sniffing, header checks, decoding and encoding.

Every limit is enforced here. The gateway only sniffs and reads headers (cheap, no pixel decode);
workers decode and encode. These functions are synchronous and CPU-bound: async callers run them
in a thread or process pool.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from typing import Literal, cast

import numpy as np
import numpy.typing as npt
import simplejpeg
from PIL import Image, ImageOps, UnidentifiedImageError

from service import colour, heif, png
from service.errors import PayloadTooLarge, UndecodableImage, UnsupportedMediaType

U8 = npt.NDArray[np.uint8]

# We enforce our own pixel limit from the header before decoding; Pillow's global bomb check
# would otherwise raise its own exception type (or only warn) with a different threshold.
Image.MAX_IMAGE_PIXELS = None

InputFormat = Literal["JPEG", "PNG", "WEBP", "BMP", "HEIF", "AVIF"]
OutputFormat = Literal["png", "jpeg", "webp", "avif"]
# What the client asks for: a format, or "auto" (the upload's own family, see ``answer_format``).
RequestedFormat = Literal["auto", "png", "jpeg", "webp", "avif"]
MetadataPolicy = Literal["strip", "keep", "keep-all"]

CONTENT_TYPES: dict[str, str] = {
    "png": "image/png",
    "jpeg": "image/jpeg",
    "webp": "image/webp",
    "avif": "image/avif",
    "JPEG": "image/jpeg",
    "PNG": "image/png",
    "WEBP": "image/webp",
    "BMP": "image/bmp",
    "HEIF": "image/heic",
    "AVIF": "image/avif",
}

# format=auto: the answer in the upload's own family. HEIC becomes JPEG: browsers other than
# Safari do not display HEIC, and writing it would need an HEVC encoder (x265, GPL).
_AUTO_FORMAT: dict[InputFormat, OutputFormat] = {
    "JPEG": "jpeg",
    "PNG": "png",
    "WEBP": "webp",
    "AVIF": "avif",
    "HEIF": "jpeg",
    "BMP": "png",
}
# libavif's speed 8 (of 0-10): 38 ms for a 600x400 photo where its default 6 took 263 ms on the
# 2-core Xeon, for a file 3% larger at the same quality.
_AVIF_SPEED = 8

# What Pillow raises on bad data; its AVIF plugin raises RuntimeError when libavif fails mid-frame.
_PILLOW_ERRORS = (UnidentifiedImageError, OSError, ValueError, SyntaxError, RuntimeError)
_ORIENTATION_TAG = 0x0112
_GPS_IFD = 0x8825
_SWAPS_AXES = {5, 6, 7, 8}


@dataclass(frozen=True, slots=True)
class ImageInfo:
    """What the header says, after EXIF orientation: the size the client will get back."""

    format: InputFormat
    width: int
    height: int

    @property
    def content_type(self) -> str:
        return CONTENT_TYPES[self.format]


def sniff_format(data: bytes) -> InputFormat:
    """Identify the type from magic bytes alone; the filename and declared type are not trusted."""
    if data.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    if data.startswith(b"BM") and len(data) >= 26:
        return "BMP"
    container = heif.sniff(data)
    if container is not None:
        return container
    raise UnsupportedMediaType("not a JPEG, PNG, WebP, BMP, HEIC/HEIF or AVIF image")


def answer_format(requested: RequestedFormat, upload: InputFormat) -> OutputFormat:
    """The format of the answer: the one asked for, or with ``auto`` the upload's family."""
    return _AUTO_FORMAT[upload] if requested == "auto" else requested


def _check_limits(width: int, height: int, *, max_pixels: int, max_side_px: int) -> None:
    if width < 1 or height < 1:
        raise UndecodableImage("image has no pixels")
    if max(width, height) > max_side_px:
        raise PayloadTooLarge(
            f"image is {width}x{height}; the longest side may be {max_side_px} px"
        )
    if width * height > max_pixels:
        raise PayloadTooLarge(f"image has {width * height} pixels; the limit is {max_pixels}")


def inspect(data: bytes, *, max_pixels: int, max_side_px: int) -> ImageInfo:
    """Read type and dimensions from the header and enforce the limits, without decoding pixels."""
    fmt = sniff_format(data)
    if fmt in ("HEIF", "AVIF"):
        # libheif reports the size after the container's rotation (irot): no swap to do.
        header = heif.read_header(data)
        _check_limits(header.width, header.height, max_pixels=max_pixels, max_side_px=max_side_px)
        return ImageInfo(format=fmt, width=header.width, height=header.height)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data), formats=[fmt]) as im:
                width, height = im.size
                orientation = _orientation(im)
    except _PILLOW_ERRORS as exc:
        raise UndecodableImage(f"the {fmt} header does not parse") from exc
    _check_limits(width, height, max_pixels=max_pixels, max_side_px=max_side_px)
    if orientation in _SWAPS_AXES:
        width, height = height, width
    return ImageInfo(format=fmt, width=width, height=height)


def _orientation(im: Image.Image) -> int:
    try:
        value = im.getexif().get(_ORIENTATION_TAG, 1)
    except Exception:  # malformed EXIF must not reject an otherwise good photo
        return 1
    return value if isinstance(value, int) else 1


@dataclass(frozen=True, slots=True)
class Decoded:
    rgb: U8  # upright sRGB, uint8 [H, W, 3]
    exif: bytes | None  # what the output may carry, per the metadata option


def decode(data: bytes, metadata: MetadataPolicy = "strip") -> Decoded:
    """Decode to upright 8-bit sRGB. Alpha is dropped; 16-bit is scaled down; an embedded ICC
    profile is converted to sRGB (the outputs are sRGB, so the profile is not carried over)."""
    fmt = sniff_format(data)
    if fmt == "HEIF":
        heic = heif.decode_heic(data)
        rgb = colour.to_srgb(_to_rgb_array(heic.image), heic.icc, heic.nclx)
        return Decoded(rgb, _kept_exif_bytes(heic.exif, metadata))
    # AVIF's colour may be signalled only as CICP (nclx), which Pillow does not expose.
    nclx = heif.read_header(data).nclx if fmt == "AVIF" else None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data), formats=[fmt]) as im:
                if fmt == "JPEG" and im.mode in {"RGB", "L"} and _orientation(im) == 1:
                    rgb = _decode_jpeg(data)
                    return Decoded(
                        colour.to_srgb(rgb, im.info.get("icc_profile")), _kept_exif(im, metadata)
                    )
                im.load()
                # exif_transpose costs a full copy even of an upright photo (measured: half
                # the decode time of a 1920x1080 JPEG, benchmarks/codecs.py): only when needed.
                upright = ImageOps.exif_transpose(im) if _orientation(im) != 1 else im
                exif = _kept_exif(im, metadata)  # after the transpose, which reads orientation
                rgb = colour.to_srgb(_to_rgb_array(upright), im.info.get("icc_profile"), nclx)
                return Decoded(rgb, exif)
    except _PILLOW_ERRORS as exc:
        raise UndecodableImage(f"the {fmt} data does not decode: {exc}") from exc


def _decode_jpeg(data: bytes) -> U8:
    """An upright RGB or grayscale JPEG, decoded by libjpeg-turbo straight into an array: the
    same pixels as Pillow's path (same library, same DCT), in ~0.5x its time (Pillow allocates
    an image, then copies it out: benchmarks/codecs.py). Corrupt data raises ValueError."""
    return cast(U8, simplejpeg.decode_jpeg(data, colorspace="RGB"))


def _kept_exif(im: Image.Image, metadata: MetadataPolicy) -> bytes | None:
    """EXIF for the output: none by default; never a stale orientation; location only if asked."""
    if metadata == "strip":
        return None
    try:
        exif = im.getexif()
    except Exception:  # malformed EXIF: nothing to keep
        return None
    return _cleaned_exif(exif, metadata)


def _kept_exif_bytes(raw: bytes | None, metadata: MetadataPolicy) -> bytes | None:
    """The same as ``_kept_exif`` for EXIF that arrives as bytes (HEIF keeps it in an item)."""
    if metadata == "strip" or not raw:
        return None
    exif = Image.Exif()
    try:
        exif.load(raw)
    except Exception:  # malformed EXIF: nothing to keep
        return None
    return _cleaned_exif(exif, metadata)


def _cleaned_exif(exif: Image.Exif, metadata: MetadataPolicy) -> bytes | None:
    if not exif:
        return None
    exif[_ORIENTATION_TAG] = 1  # the pixels are already upright
    if metadata != "keep-all":
        exif.pop(_GPS_IFD, None)
    return exif.tobytes()


def _to_rgb_array(im: Image.Image) -> U8:
    if im.mode in {"I;16", "I;16B", "I;16L", "I"}:
        # 16-bit samples: scale the full 0..65535 range, however dark the photo is.
        wide = np.clip(np.asarray(im).astype(np.int64), 0, 65535)
        gray = ((wide * 255 + 32767) // 65535).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=2)
    if im.mode == "F":
        gray = np.clip(np.asarray(im), 0, 255).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=2)
    if im.mode != "RGB":
        im = (
            im.convert("RGBA").convert("RGB")
            if "A" in im.getbands() or im.mode == "P"
            else im.convert("RGB")
        )
    return np.ascontiguousarray(np.asarray(im, dtype=np.uint8))


def pad_for_model(image: U8, min_side_px: int, bucket_px: int = 0) -> U8:
    """Replicate edges so both sides reach the model's minimum and, with ``bucket_px``, a
    multiple of it (so photos of nearby sizes share a shape, and a batch); the outputs are
    cropped back after."""
    h, w = image.shape[:2]

    def target(side: int) -> int:
        side = max(side, min_side_px)
        return -(-side // bucket_px) * bucket_px if bucket_px > 0 else side

    pad_h, pad_w = target(h) - h, target(w) - w
    if not pad_h and not pad_w:
        return image
    widths = [(0, pad_h), (0, pad_w)] + [(0, 0)] * (image.ndim - 2)
    return np.pad(image, widths, mode="edge")


def encode_image(
    rgb: U8,
    fmt: OutputFormat,
    *,
    quality: int | None,
    exif: bytes | None = None,
    png_compress_level: int,
    jpeg_quality: int,
    webp_quality: int,
    avif_quality: int,
) -> bytes:
    """Encode uint8 [H, W, 3] RGB. ``quality`` (1-100) overrides the default for JPEG, WebP and
    AVIF."""
    if fmt == "png":
        return png.encode_rgb(rgb, png_compress_level, exif)
    im = Image.fromarray(rgb)
    buf = io.BytesIO()
    extra: dict[str, object] = {"exif": exif} if exif else {}
    if fmt == "jpeg":
        im.save(buf, format="JPEG", quality=quality or jpeg_quality, optimize=False, **extra)
    elif fmt == "avif":
        im.save(buf, format="AVIF", quality=quality or avif_quality, speed=_AVIF_SPEED, **extra)
    else:
        im.save(buf, format="WEBP", quality=quality or webp_quality, method=2, **extra)
    return buf.getvalue()


def encode_mask(mask: U8, *, png_compress_level: int) -> bytes:
    """An 8-bit grayscale PNG whose pixel values are class ids."""
    buf = io.BytesIO()
    Image.fromarray(mask).save(buf, format="PNG", compress_level=png_compress_level)
    return buf.getvalue()
