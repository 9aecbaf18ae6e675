"""Colour: embedded profiles and CICP (nclx) signalling converted to sRGB, and the strength blend.

The model was trained on sRGB and every answer is sRGB, so colour is converted on the way in. An
ICC profile wins over nclx (as libheif and browsers do). nclx gives primaries as chromaticities;
the conversion goes through linear light and CIE XYZ. HDR transfers (PQ, HLG) are not tone
mapped: their 8-bit samples are used as they are.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageCms

U8 = npt.NDArray[np.uint8]
F64 = npt.NDArray[np.float64]

_SRGB_PROFILE = ImageCms.createProfile("sRGB")
# CICP colour primaries that are sRGB's own (BT.709) or unspecified (taken as sRGB).
_SRGB_PRIMARIES = {1, 2}
_HDR_TRANSFERS = {16, 18}  # SMPTE ST 2084 (PQ), ARIB STD-B67 (HLG)
_SRGB_XY = ((0.64, 0.33), (0.30, 0.60), (0.15, 0.06), (0.3127, 0.3290))


def _srgb_to_linear(v: F64) -> F64:
    out: F64 = np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)
    return out


def _linear_to_srgb(v: F64) -> F64:
    out: F64 = np.where(
        v <= 0.0031308, v * 12.92, 1.055 * np.power(np.maximum(v, 0.0031308), 1 / 2.4) - 0.055
    )
    return out


_TO_LINEAR = _srgb_to_linear(np.arange(256) / 255).astype(np.float32)
# 16-bit steps of linear light: fine enough that no sRGB level collapses into its neighbour in the
# shadows, where these dark photos live (sRGB level 1 is linear 0.0003, twenty steps).
_LINEAR_STEPS = 65535
_TO_SRGB8 = np.round(_linear_to_srgb(np.arange(_LINEAR_STEPS + 1) / _LINEAR_STEPS) * 255).astype(
    np.uint8
)


def _rgb_to_xyz(xy: tuple[tuple[float, float], ...]) -> F64:
    """The RGB -> XYZ matrix of primaries and white point given as chromaticities."""
    (rx, ry), (gx, gy), (bx, by), (wx, wy) = xy
    primaries = np.array([[x / y, 1.0, (1 - x - y) / y] for x, y in ((rx, ry), (gx, gy), (bx, by))])
    white = np.array([wx / wy, 1.0, (1 - wx - wy) / wy])
    scale = np.linalg.solve(primaries.T, white)
    result: F64 = np.asarray(primaries.T * scale, dtype=np.float64)
    return result


_XYZ_TO_SRGB = np.linalg.inv(_rgb_to_xyz(_SRGB_XY))


def _nclx_xy(nclx: dict[str, Any]) -> tuple[tuple[float, float], ...] | None:
    try:
        return tuple(
            (float(nclx[f"color_primary_{c}_x"]), float(nclx[f"color_primary_{c}_y"]))
            for c in ("red", "green", "blue", "white")
        )
    except (KeyError, TypeError, ValueError):
        return None


def nclx_to_srgb(rgb: U8, nclx: dict[str, Any]) -> U8:
    """Convert from the primaries nclx names to sRGB's, in linear light; clip what sRGB lacks."""
    if nclx.get("color_primaries") in _SRGB_PRIMARIES:
        return rgb
    if nclx.get("transfer_characteristics") in _HDR_TRANSFERS:
        return rgb
    xy = _nclx_xy(nclx)
    if xy is None:
        return rgb
    matrix = (_XYZ_TO_SRGB @ _rgb_to_xyz(xy)).astype(np.float32)
    linear = _TO_LINEAR[rgb] @ matrix.T
    index = np.clip(linear * _LINEAR_STEPS + 0.5, 0, _LINEAR_STEPS).astype(np.uint16)
    return np.ascontiguousarray(_TO_SRGB8[index])


def icc_to_srgb(rgb: U8, icc: bytes) -> U8:
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        converted = ImageCms.profileToProfile(
            Image.fromarray(rgb), source, _SRGB_PROFILE, outputMode="RGB"
        )
    except (ImageCms.PyCMSError, OSError, ValueError):
        return rgb  # a broken profile is ignored rather than failing the photo
    assert converted is not None
    return np.asarray(converted, dtype=np.uint8)


def to_srgb(rgb: U8, icc: bytes | None, nclx: dict[str, Any] | None = None) -> U8:
    """sRGB pixels from an ICC profile or, failing that, nclx signalling; unchanged with neither."""
    if icc:
        return icc_to_srgb(rgb, icc)
    if nclx:
        return nclx_to_srgb(rgb, nclx)
    return rgb


def blend(original: U8, enhanced: U8, strength: float) -> U8:
    """``strength`` of the way from the original to the enhanced photo, in sRGB values.

    sRGB values are close to perceptually uniform lightness, so equal steps of strength look like
    equal steps of change (a dark photo's L* moves 10% of the way at 0.1, 51% at 0.5); a mix in
    linear light front-loads it (24% at 0.1, 69% at 0.5), lightness being a cube root of light.
    It is also how a browser mixes two stacked images by opacity, so the web page's slider
    previews what the service returns."""
    if strength >= 1.0:
        return enhanced
    if strength <= 0.0:
        return original
    weight = round(strength * 256)
    mixed = original.astype(np.uint16) * (256 - weight) + enhanced.astype(np.uint16) * weight
    return ((mixed + 128) >> 8).astype(np.uint8)
