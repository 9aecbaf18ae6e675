"""The deploy wrapper: the exact ONNX contract the service relies on.

Inputs:  ``image``    uint8 [N, H, W, 3] RGB (NHWC), any H, W in 32..4096.
Outputs: ``enhanced`` uint8 [N, H, W, 3]; ``mask`` uint8 [N, H, W], class ids 0..10.

Everything else (scaling, layout, padding to the network stride, cropping, rounding,
argmax) happens inside the graph so that clients only move bytes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sllen.model import SLLEN, up

INPUT_NAME = "image"
OUTPUT_NAMES = ("enhanced", "mask")
MIN_SIDE = 32
MAX_SIDE = 4096


class DeployWrapper(nn.Module):
    def __init__(self, net: SLLEN) -> None:
        super().__init__()
        self.net = net
        self.stride = net.stride

    def forward(self, image: Tensor) -> tuple[Tensor, Tensor]:
        # image: [N, H, W, 3] uint8
        # TensorRT allows uint8 only at the graph's edges, cast from/to float: cast first.
        x = image.float().permute(0, 3, 1, 2) / 255.0  # [N, 3, H, W]
        h, w = x.shape[2], x.shape[3]
        s = self.stride
        # Round up with integer Div/Mul/Sub rather than Mod: plainer ops for TensorRT.
        pad_h = (h + s - 1) // s * s - h
        pad_w = (w + s - 1) // s * s - w
        # Replicate (ONNX "edge") padding: no seam at the border and valid for any pad size.
        x = F.pad(x, [0, pad_w, 0, pad_h], mode="replicate")  # [N, 3, Hp, Wp]
        feats = self.net.encode(x)
        seg = self.net.segment(feats)
        y = self.net.enhance(x, feats, seg)[:, :, :h, :w]  # [N, 3, H, W]
        logits = up(seg.logits, 4)  # [N, 11, Hp, Wp]
        enhanced = torch.round(torch.clamp(y, 0.0, 1.0) * 255.0).permute(0, 2, 3, 1)
        # argmax is int64; going through float keeps every cast to uint8 a float->uint8 one.
        # Crop after the argmax, not the 11-channel logits: per pixel it is the same mask,
        # and the crop copies 1 channel instead of 11 (600x400 ORT: 3% faster).
        mask = torch.argmax(logits, dim=1).float()[:, :h, :w]  # [N, H, W]
        return enhanced.to(torch.uint8), mask.to(torch.uint8)
