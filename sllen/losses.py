"""Losses: Charbonnier, SSIM, image brightness, and the semantic-consistency KL."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def charbonnier(x: Tensor, y: Tensor, eps: float = 1e-3) -> Tensor:
    return torch.sqrt((x - y) ** 2 + eps * eps).mean()


def brightness(x: Tensor, y: Tensor) -> Tensor:
    """Mean absolute difference of each image's per-channel means: a global exposure and colour
    cast that per-pixel losses weigh no more than any local error."""
    return (x.mean(dim=(2, 3)) - y.mean(dim=(2, 3))).abs().mean()


def _gauss_window(size: int, sigma: float, channels: int, device: torch.device) -> Tensor:
    g = torch.exp(-((torch.arange(size, device=device) - size // 2) ** 2) / (2 * sigma**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :]).expand(channels, 1, size, size).contiguous()


def ssim(x: Tensor, y: Tensor, size: int = 11, sigma: float = 1.5) -> Tensor:
    """Mean SSIM of [B, C, H, W] images in [0, 1] (Gaussian window, valid region)."""
    c = x.shape[1]
    w = _gauss_window(size, sigma, c, x.device).to(x.dtype)

    def blur(t: Tensor) -> Tensor:
        return F.conv2d(t, w, groups=c)

    mx, my = blur(x), blur(y)
    sxx = blur(x * x) - mx * mx
    syy = blur(y * y) - my * my
    sxy = blur(x * y) - mx * my
    c1, c2 = 0.01**2, 0.03**2
    s = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
    return s.mean()


def semantic_kl(pred_logits: Tensor, ref_logits: Tensor) -> Tensor:
    """KL(softmax(ref) || softmax(pred)) per pixel, averaged; ref is a fixed teacher."""
    return (
        F.kl_div(
            F.log_softmax(pred_logits, dim=1),
            F.log_softmax(ref_logits.detach(), dim=1),
            reduction="none",
            log_target=True,
        )
        .sum(dim=1)
        .mean()
    )
