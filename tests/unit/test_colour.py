"""The strength blend and CICP colour conversion."""

from __future__ import annotations

import numpy as np
import pytest

from service import colour
from testkit.images import dark_scene


def test_strength_ends_are_the_two_images() -> None:
    original = dark_scene(20, 30, peak=40)
    enhanced = dark_scene(20, 30, seed=4, peak=250)
    assert colour.blend(original, enhanced, 0.0) is original
    assert colour.blend(original, enhanced, 1.0) is enhanced


@pytest.mark.parametrize("strength", [0.25, 0.5, 0.75])
def test_strength_mixes_srgb_values(strength: float) -> None:
    original = dark_scene(20, 30, peak=40)
    enhanced = dark_scene(20, 30, seed=4, peak=250)
    got = colour.blend(original, enhanced, strength).astype(float)
    want = original + strength * (enhanced.astype(float) - original)
    assert np.abs(got - want).max() <= 1


def _lightness(rgb: np.ndarray) -> float:
    """Mean CIE L* of sRGB pixels."""
    v = rgb / 255
    lin = np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)
    y = lin @ np.array([0.2126, 0.7152, 0.0722])
    return float(np.mean(np.where(y > 0.008856, 116 * np.cbrt(y) - 16, 903.3 * y)))


def test_equal_steps_of_strength_look_like_equal_steps() -> None:
    # A dark photo and a bright answer: the lightness of the blend should grow evenly with
    # strength (each quarter within a factor 1.5 of the others), as a slider should feel.
    original = dark_scene(60, 80, peak=30)
    enhanced = np.clip(original.astype(int) * 6 + 20, 0, 255).astype(np.uint8)
    steps = np.diff(
        [_lightness(colour.blend(original, enhanced, s)) for s in (0, 0.25, 0.5, 0.75, 1)]
    )
    assert steps.min() > 0
    assert steps.max() / steps.min() < 1.5, steps


def test_srgb_primaries_are_left_alone() -> None:
    rgb = dark_scene(10, 10, peak=200)
    assert colour.to_srgb(rgb, None, {"color_primaries": 1}) is rgb
    assert colour.to_srgb(rgb, None, {"color_primaries": 2}) is rgb


def test_grey_stays_grey_across_primaries_sharing_the_white_point() -> None:
    p3 = {
        "color_primaries": 12,
        "transfer_characteristics": 13,
        "color_primary_red_x": 0.68,
        "color_primary_red_y": 0.32,
        "color_primary_green_x": 0.265,
        "color_primary_green_y": 0.69,
        "color_primary_blue_x": 0.15,
        "color_primary_blue_y": 0.06,
        "color_primary_white_x": 0.3127,
        "color_primary_white_y": 0.329,
    }
    grey = np.repeat(np.arange(256, dtype=np.uint8)[None, :, None], 3, axis=2)
    assert np.abs(colour.to_srgb(grey, None, p3).astype(int) - grey).max() <= 1
