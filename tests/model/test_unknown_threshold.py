"""The unknown-threshold sweep applies each threshold as the deploy graph does."""

from __future__ import annotations

import numpy as np
import torch

from sllen.deploy import UNKNOWN_ID, DeployWrapper
from sllen.model import build
from sllen.studies import unknown_threshold as U

from .conftest import TINY_CONFIGS


def test_sweep_matches_the_deploy_graph_at_each_threshold() -> None:
    torch.manual_seed(0)
    net = build(TINY_CONFIGS["tiny_mask"]).eval()
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (37, 50, 3), dtype=np.uint8)
    mask, conf = U.mask_and_confidence(net, image)
    for t in (0.0, 0.15, 0.3):
        with torch.no_grad():
            _, served = DeployWrapper(net, unknown_below=t)(torch.from_numpy(image)[None])
        assert np.array_equal(np.where(conf < t, UNKNOWN_ID, mask), served[0].numpy())
    label = rng.integers(0, 11, (37, 50)).astype(np.uint8)
    rows = U.sweep(net, [(image, label)])
    assert rows[0.0]["unknown"] == 0.0
    assert [rows[t]["unknown"] for t in U.THRESHOLDS] == sorted(
        rows[t]["unknown"] for t in U.THRESHOLDS
    )
    wrong = [rows[t]["wrong"] for t in U.THRESHOLDS]
    assert wrong == sorted(wrong, reverse=True)  # an unsure pixel is no longer a wrong one
    assert all(0.0 <= r["wrong"] + r["unknown"] <= 1.0 for r in rows.values())
