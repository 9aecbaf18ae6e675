"""Fixtures for the network tests: small, fast configurations, CPU only."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from sllen.model import VARIANTS, NetConfig

# Tiny widths keep the ONNX round trips fast; they share every code path with the variants.
TINY = NetConfig(
    enc_widths=(8, 8, 16, 16),
    enc_depths=(1, 1, 1, 1),
    seg_width=8,
    hsf_channels=4,
    dec_widths=(8, 8, 8),
    input_norm=True,
)
TINY_CONFIGS = {
    "tiny": TINY,
    "tiny_nosem": dataclasses.replace(TINY, use_semantics=False),
    "tiny_gain": dataclasses.replace(TINY, output_mode="gain"),
    "tiny_nonorm": dataclasses.replace(TINY, input_norm=False),  # the v1 checkpoints
    "tiny_gate": dataclasses.replace(TINY, exposure_gate=True),
    "tiny_deblock": dataclasses.replace(
        TINY, output_mode="curve_detail", exposure_gate=True, deblock="fixed"
    ),
    "tiny_mask": dataclasses.replace(TINY, exposure_gate=True, mask_head=True, mask_refine=1),
    "tiny_3stage": dataclasses.replace(
        TINY, enc_widths=(8, 8, 16), enc_depths=(1, 1, 1), dec_widths=(8, 8), curve_maps=8
    ),
}
ALL_CONFIGS = {**VARIANTS, **TINY_CONFIGS}


@pytest.fixture(autouse=True)
def _seed_and_threads() -> None:
    torch.manual_seed(0)
    torch.set_num_threads(2)
