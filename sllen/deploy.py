"""The deploy wrapper: the exact ONNX contract the service relies on.

Inputs:  ``image``    uint8 [N, H, W, 3] RGB (NHWC), any H, W in 32..4096.
Outputs: ``enhanced`` uint8 [N, H, W, 3]; ``mask`` uint8 [N, H, W], class ids 0..10, or
``UNKNOWN_ID`` (11, CamVid's void) where the network's top class probability is below
``UNKNOWN_BELOW``: a client then draws nothing rather than a wrong label.

Everything else (scaling, layout, padding to the network stride, cropping, rounding,
argmax) happens inside the graph so that clients only move bytes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sllen.model import IGNORE_INDEX, SLLEN, channel_softmax, up

INPUT_NAME = "image"
OUTPUT_NAMES = ("enhanced", "mask")
MIN_SIDE = 32
MAX_SIDE = 4096
UNKNOWN_ID = IGNORE_INDEX
# Top softmax probability (at the logits' 1/4 resolution, upsampled) under which a pixel is
# "unknown": the best mean of as-shot and darkened mIoU on CamVid training frames for the
# served mask head (python -m sllen.studies.unknown_threshold; sllen.evaluate reports the
# share it removes). SSaN's own softmax, less sure of itself, had its best at 0.5.
UNKNOWN_BELOW = 0.6


class DeployWrapper(nn.Module):
    def __init__(self, net: SLLEN, unknown_below: float = UNKNOWN_BELOW) -> None:
        super().__init__()
        self.net = net
        self.stride = net.stride
        self.unknown_below = unknown_below

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
        mask_logits = self.net.mask_logits(feats, seg)  # [N, 11, Hp/4, Wp/4]
        logits = up(mask_logits, 4)  # [N, 11, Hp, Wp]
        enhanced = torch.round(torch.clamp(y, 0.0, 1.0) * 255.0).permute(0, 2, 3, 1)
        # argmax is int64; going through float keeps every cast to uint8 a float->uint8 one.
        # Crop after the argmax, not the 11-channel logits: per pixel it is the same mask,
        # and the crop copies 1 channel instead of 11 (600x400 ORT: 3% faster).
        mask = torch.argmax(logits, dim=1).float()[:, :h, :w]  # [N, H, W]
        if self.unknown_below > 0:
            # Confidence at 1/4 resolution, then upsampled: one channel, not eleven.
            conf = up(channel_softmax(mask_logits).amax(dim=1, keepdim=True), 4)
            unsure = conf[:, 0, :h, :w] < self.unknown_below
            mask = torch.where(unsure, torch.full_like(mask, float(UNKNOWN_ID)), mask)
        return enhanced.to(torch.uint8), mask.to(torch.uint8)
