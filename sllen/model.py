"""SLLEN: semantic-aware low-light image enhancement (arXiv 2211.11571), CPU-sized.

A shared encoder feeds two decoders:

* SSaN (segmentation auxiliary network) predicts the 11 CamVid classes and exposes
  HSF (an embedding of its class probabilities) and IEF (an intermediate decoder feature).
* LLEmN (enhancement main network) is a U-Net-style decoder whose feature-enhancement
  blocks modulate features with IEF (SFT: per-pixel scale and shift) and re-weight them
  with attention computed from HSF (channel and spatial), then predicts per-pixel curve
  parameters (Zero-DCE style) at half resolution that are applied to the full-res input.

All spatial sizes must be multiples of ``SLLEN.stride``; the deploy wrapper pads to that.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sllen.deblock import deblock as deblock_8x8
from sllen.deblock import deblock_adaptive

NUM_CLASSES = 11
IGNORE_INDEX = 11

ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": lambda: nn.ReLU(inplace=True),
    "lrelu": lambda: nn.LeakyReLU(0.1, inplace=True),
    "silu": lambda: nn.SiLU(inplace=True),
}

OUTPUT_MODES = ("curve", "gain", "curve_detail")
# sllen.deblock on the enhanced image: none, fixed thresholds, or thresholds set by how
# blocky the input is (sllen.deblock.deblock_adaptive).
DEBLOCK_MODES = ("off", "fixed", "adaptive")
NORM_LUMA = 0.45  # SICE well-exposed targets sit at mean luma ~90..170 of 255
MAX_GAIN = 64.0


def conv3x3(in_ch: int, out_ch: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1)


def conv1x1(in_ch: int, out_ch: int) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, 1)


def up(x: Tensor, factor: int) -> Tensor:
    """Bilinear upsampling by an integer factor (an ONNX Resize with fixed scales)."""
    return F.interpolate(x, scale_factor=float(factor), mode="bilinear", align_corners=False)


def channel_softmax(x: Tensor) -> Tensor:
    """softmax over dim 1, spelled out: ONNX Runtime's Softmax on a non-last axis of a 4-D
    tensor transposes around the kernel (1.6 ms of a 57 ms 600x400 run; the spelled-out form
    made the whole run 2.6% faster). Same values to float rounding."""
    e = torch.exp(x - x.amax(dim=1, keepdim=True))
    return e / e.sum(dim=1, keepdim=True)


class ResBlock(nn.Module):
    """x + conv(act(conv(x))); no normalisation, so train and eval behave the same."""

    def __init__(self, ch: int, act: str) -> None:
        super().__init__()
        self.conv1 = conv3x3(ch, ch)
        self.act = ACTIVATIONS[act]()
        self.conv2 = conv3x3(ch, ch)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv2(self.act(self.conv1(x)))


class Encoder(nn.Module):
    """Stages of (stride-2 conv, act, ResBlocks); stage i works at 1/2**(i+1)."""

    def __init__(
        self, widths: tuple[int, ...], depths: tuple[int, ...], act: str, in_ch: int = 3
    ) -> None:
        super().__init__()
        stages: list[nn.Module] = []
        for width, depth in zip(widths, depths, strict=True):
            layers: list[nn.Module] = [conv3x3(in_ch, width, stride=2), ACTIVATIONS[act]()]
            layers += [ResBlock(width, act) for _ in range(depth)]
            stages.append(nn.Sequential(*layers))
            in_ch = width
        self.stages = nn.ModuleList(stages)

    def forward(self, x: Tensor) -> list[Tensor]:
        # x: [B, in_ch, H, W] -> feats[i]: [B, widths[i], H / 2**(i+1), W / 2**(i+1)]
        feats = []
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        return feats


@dataclass(frozen=True)
class SegOutput:
    logits: Tensor  # [B, 11, H/4, W/4]
    hsf: Tensor | None  # [B, hsf_ch, H/4, W/4] high-level semantic feature (None: ablation)
    ief: Tensor  # [B, seg_width, H/8, W/8] intermediate embedding feature


class SegDecoder(nn.Module):
    """SSaN: FPN-like top-down decoder from the deepest stage to 1/4 resolution."""

    def __init__(
        self,
        enc_widths: tuple[int, ...],
        width: int,
        hsf_ch: int,
        act: str,
        make_hsf: bool,
        refine: int = 0,
    ) -> None:
        super().__init__()
        # Levels used: stages 1..n-1 (1/4 .. 1/2**n); stage 0 (1/2) is left to LLEmN.
        self.laterals = nn.ModuleList([conv1x1(w, width) for w in enc_widths[1:]])
        self.blocks = nn.ModuleList(
            [nn.Sequential(conv3x3(width, width), ACTIVATIONS[act]()) for _ in enc_widths[2:]]
        )
        # ``refine`` residual blocks at each of the two coarsest levels (1/16, 1/8 for 4
        # stages): context for the mask head at under 1/15 of the network's cost, where the
        # same blocks at 1/4 would cost four times as much. Their last convolution starts at
        # zero, so a head copied from SSaN starts out computing exactly what SSaN does.
        self.refine = nn.ModuleList(
            [nn.Sequential(*[ResBlock(width, act) for _ in range(refine)]) for _ in range(2)]
        )
        for block in self.refine.modules():
            if isinstance(block, ResBlock):
                nn.init.zeros_(block.conv2.weight)
                nn.init.zeros_(block.conv2.bias)
        self.classifier = conv1x1(width, NUM_CLASSES)
        # Without semantics nothing consumes HSF, so it is not built (no dead parameters).
        self.hsf = (
            nn.Sequential(conv1x1(NUM_CLASSES, hsf_ch), ACTIVATIONS[act]()) if make_hsf else None
        )

    def forward(self, feats: list[Tensor]) -> SegOutput:
        skips = feats[1:]  # skips[i]: [B, C_i, H / 2**(i+2), W / 2**(i+2)]
        p = self.refine[0](self.laterals[-1](skips[-1]))  # [B, width, H/S, W/S]
        ief = p
        for i in range(len(skips) - 2, -1, -1):
            p = self.blocks[i](up(p, 2) + self.laterals[i](skips[i]))
            if i == len(skips) - 2:
                p = self.refine[1](p)
            if i == 1:  # the 1/8 level: an intermediate decoder layer, not the output
                ief = p
        logits = self.classifier(p)  # [B, 11, H/4, W/4]
        hsf = self.hsf(channel_softmax(logits)) if self.hsf is not None else None
        return SegOutput(logits=logits, hsf=hsf, ief=ief)


class FeatureEnhanceBlock(nn.Module):
    """Injects IEF by SFT and HSF by attention, fuses both, then a ResBlock."""

    def __init__(self, ch: int, hsf_ch: int, ief_ch: int, act: str, use_semantics: bool) -> None:
        super().__init__()
        if use_semantics:
            self.sft_shared = nn.Sequential(conv1x1(ief_ch, ch), ACTIVATIONS[act]())
            self.sft_scale = conv1x1(ch, ch)
            self.sft_shift = conv1x1(ch, ch)
            self.att_channel = conv1x1(hsf_ch, ch)
            self.att_spatial = conv3x3(hsf_ch, 1)
            self.fuse = conv1x1(2 * ch, ch)
        self.body = ResBlock(ch, act)

    def forward(self, x: Tensor, hsf: Tensor | None, ief: Tensor | None) -> Tensor:
        # x: [B, C, h, w]; hsf: [B, hsf_ch, h, w]; ief: [B, ief_ch, h, w]
        if hsf is not None and ief is not None:
            s = self.sft_shared(ief)
            x_sft = x * (1.0 + self.sft_scale(s)) + self.sft_shift(s)
            w_c = torch.sigmoid(self.att_channel(hsf.mean(dim=(2, 3), keepdim=True)))  # [B,C,1,1]
            w_s = torch.sigmoid(self.att_spatial(hsf))  # [B, 1, h, w]
            x_att = x * (w_c * w_s)
            x = x + self.fuse(torch.cat([x_sft, x_att], dim=1))
        return self.body(x)


class ExposureGate(nn.Module):
    """How much of the enhancement an image gets, in [0, 1], from its exposure statistics:
    log mean luma, RMS luma, and the shares of dark (< ~0.15) and clipped (> ~0.9) pixels.

    A well-exposed photo should come back as it went in; one global number learns that far
    faster than every per-pixel head learning to be the identity. It sees statistics, not
    features: fed the bottleneck it learned "street scene -> leave alone" from the CamVid
    identity pairs and shut for dark street scenes too. Starts at 0.98 (last layer zero).
    """

    N_STATS = 4

    def __init__(self, act: str, hidden: int = 16, start: float = 4.0) -> None:
        super().__init__()
        self.mlp = nn.Sequential(
            conv1x1(self.N_STATS, hidden), ACTIVATIONS[act](), conv1x1(hidden, 1)
        )
        last = self.mlp[-1]
        assert isinstance(last, nn.Conv2d)
        nn.init.zeros_(last.weight)
        nn.init.constant_(last.bias, start)  # sigmoid(4) = 0.982

    @staticmethod
    def stats(lum: Tensor) -> Tensor:
        """lum: [B, 1, H, W] in [0, 1] -> [B, 4, 1, 1]."""

        def mean(t: Tensor) -> Tensor:
            return t.mean(dim=(2, 3), keepdim=True)

        return torch.cat(
            [
                torch.log(mean(lum) + 1e-3),
                torch.sqrt(mean(lum * lum)),
                mean(torch.sigmoid((0.15 - lum) * 40.0)),
                mean(torch.sigmoid((lum - 0.9) * 40.0)),
            ],
            dim=1,
        )

    def forward(self, lum: Tensor) -> Tensor:
        return torch.sigmoid(self.mlp(self.stats(lum)))  # [B, 1, 1, 1]


class GlobalContext(nn.Module):
    """Image-level scale and shift from the pooled bottleneck.

    Exposure is a whole-image decision: a crop-sized receptive field cannot tell a dark
    wall in a bright room from a dark room, so the bottleneck is modulated by its own mean.
    """

    def __init__(self, ch: int, act: str) -> None:
        super().__init__()
        self.mlp = nn.Sequential(conv1x1(ch, ch), ACTIVATIONS[act](), conv1x1(ch, 2 * ch))

    def forward(self, x: Tensor) -> Tensor:
        scale, shift = self.mlp(x.mean(dim=(2, 3), keepdim=True)).chunk(2, dim=1)
        return x * (1.0 + scale) + shift


def resize_to_level(t: Tensor, t_level: int, level: int) -> Tensor:
    """Move a map living at 1/2**t_level to 1/2**level (integer factors only)."""
    if level == t_level:
        return t
    if level < t_level:
        return up(t, 2 ** (t_level - level))
    k = 2 ** (level - t_level)
    return F.avg_pool2d(t, kernel_size=k, stride=k)


class EnhanceDecoder(nn.Module):
    """LLEmN decoder: upsample, add skip, FEB with HSF/IEF, down to 1/2 resolution."""

    def __init__(
        self,
        enc_widths: tuple[int, ...],
        dec_widths: tuple[int, ...],
        hsf_ch: int,
        ief_ch: int,
        out_ch: int,
        act: str,
        use_semantics: bool,
        global_context: bool = False,
    ) -> None:
        super().__init__()
        assert len(dec_widths) == len(enc_widths) - 1
        self.context = GlobalContext(enc_widths[-1], act) if global_context else None
        in_widths = (enc_widths[-1], *dec_widths[:-1])
        skip_widths = enc_widths[-2::-1]  # skips from 1/2**(n-1) down to 1/2
        self.reduce = nn.ModuleList(
            [conv1x1(i, o) for i, o in zip(in_widths, dec_widths, strict=True)]
        )
        self.skips = nn.ModuleList(
            [conv1x1(s, o) for s, o in zip(skip_widths, dec_widths, strict=True)]
        )
        self.act = ACTIVATIONS[act]()
        self.use_semantics = use_semantics
        self.blocks = nn.ModuleList(
            [FeatureEnhanceBlock(o, hsf_ch, ief_ch, act, use_semantics) for o in dec_widths]
        )
        self.head = conv3x3(dec_widths[-1], out_ch)

    def forward(self, feats: list[Tensor], seg: SegOutput) -> Tensor:
        n = len(feats)
        y = feats[-1]  # [B, C, H/2**n, W/2**n]
        if self.context is not None:
            y = self.context(y)
        for i in range(n - 1):
            level = n - 1 - i  # this step's output lives at 1/2**level
            y = self.act(up(self.reduce[i](y), 2) + self.skips[i](feats[level - 1]))
            if self.use_semantics and seg.hsf is not None:
                y = self.blocks[i](
                    y, resize_to_level(seg.hsf, 2, level), resize_to_level(seg.ief, 3, level)
                )
            else:
                y = self.blocks[i](y, None, None)
        return self.head(y)  # [B, out_ch, H/2, W/2]


class SLLEN(nn.Module):
    """Shared encoder + SSaN + LLEmN. forward = encode -> segment -> enhance."""

    def __init__(
        self,
        enc_widths: tuple[int, ...] = (16, 32, 64, 96),
        enc_depths: tuple[int, ...] = (1, 1, 2, 2),
        seg_width: int = 32,
        hsf_channels: int = 16,
        dec_widths: tuple[int, ...] = (48, 32, 16),
        act: str = "lrelu",
        use_semantics: bool = True,
        output_mode: str = "curve",
        curve_iters: int = 8,
        curve_maps: int = 2,
        input_norm: bool = False,
        global_context: bool = False,
        exposure_gate: bool = False,
        deblock: str = "off",
        mask_head: bool = False,
        mask_refine: int = 2,
        dark_expert: bool = False,
    ) -> None:
        super().__init__()
        if len(enc_widths) < 3:
            raise ValueError("need at least 3 encoder stages (IEF lives at 1/8)")
        if output_mode not in OUTPUT_MODES:
            raise ValueError(f"output_mode must be one of {OUTPUT_MODES}")
        if deblock not in DEBLOCK_MODES:
            raise ValueError(f"deblock must be one of {DEBLOCK_MODES}")
        self.stride = 2 ** len(enc_widths)
        self.output_mode = output_mode
        if curve_iters % curve_maps:
            raise ValueError("curve_iters must be a multiple of curve_maps")
        self.curve_iters = curve_iters
        self.curve_maps = curve_maps
        self.input_norm = input_norm
        out_ch = {"curve": 3 * curve_maps, "gain": 3, "curve_detail": 3 * curve_maps + 4}[
            output_mode
        ]
        # BT.601 luma weights as a buffer: [1, 3, 1, 1].
        self.register_buffer(
            "luma_weights", torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1), persistent=False
        )
        self.encoder = Encoder(tuple(enc_widths), tuple(enc_depths), act, 6 if input_norm else 3)
        self.ssan = SegDecoder(tuple(enc_widths), seg_width, hsf_channels, act, use_semantics)

        def enhance_decoder() -> EnhanceDecoder:
            return EnhanceDecoder(
                tuple(enc_widths),
                tuple(dec_widths),
                hsf_channels,
                seg_width,
                out_ch,
                act,
                use_semantics,
                global_context,
            )

        self.llemn = enhance_decoder()
        self.gate = ExposureGate(act) if exposure_gate else None
        # The served mask from a decoder of its own: SSaN's logits are what HSF embeds, so
        # retraining SSaN for the mask would move the features LLEmN was trained on. The head
        # can be retrained alone on the frozen encoder; the enhancement stays bit for bit.
        self.mask_head = (
            SegDecoder(tuple(enc_widths), seg_width, hsf_channels, act, False, mask_refine)
            if mask_head
            else None
        )
        # A second LLEmN for very dark photos (LOL-v1's regime: luma ~5-25, real sensor
        # noise, references whose brightness follows the scene, not the input). Trained on
        # LOL alone while everything else stays frozen, because every recipe that taught the
        # shared LLEmN or encoder LOL paid for it on SICE. A router on the same luma
        # statistics as the gate blends the two decoders' curve parameters. The expert starts
        # as a copy of LLEmN (sllen.train.load_initial), so the blend starts as LLEmN alone.
        self.dark = enhance_decoder() if dark_expert else None
        self.router = ExposureGate(act, start=-6.0) if dark_expert else None
        # Training the expert alone sets this to 1: every image goes to it.
        self.force_route: float | None = None
        # No parameters: the filter can be switched on for a network trained without it.
        self.deblock = deblock

    def normalise(self, x: Tensor) -> Tensor:
        """Exposure normalisation: scale each image so its mean luma is ``NORM_LUMA``.

        Dark inputs then look like daylight ones to the shared encoder, so segmentation
        works on them. The gain is never below 1 (well-exposed inputs pass unchanged).
        Only the encoder sees it, next to the raw input: the curves still act on the raw
        input, because the gain clips highlights and LE curves cannot undo a clipped 1.0
        (tried: applying the curves to the normalised image stalled SICE PSNR at ~18.8 dB).
        """
        if not self.input_norm:
            return x
        lum = (x * self.luma_weights).sum(dim=1, keepdim=True)  # [B, 1, H, W]
        gain = NORM_LUMA / (lum.mean(dim=(2, 3), keepdim=True) + 1e-3)  # [B, 1, 1, 1]
        return torch.clamp(x * torch.clamp(gain, 1.0, MAX_GAIN), 0.0, 1.0)

    def encode(self, x: Tensor) -> list[Tensor]:
        if self.input_norm:  # [B, 6, H, W]: normalised and raw (the raw keeps the exposure)
            return self.encoder(torch.cat([self.normalise(x), x], dim=1))
        return self.encoder(x)

    def segment(self, feats: list[Tensor]) -> SegOutput:
        return self.ssan(feats)

    def mask_logits(self, feats: list[Tensor], seg: SegOutput) -> Tensor:
        """The logits the served mask is taken from: [B, 11, H/4, W/4]."""
        return seg.logits if self.mask_head is None else self.mask_head(feats).logits

    def enhance(self, x: Tensor, feats: list[Tensor], seg: SegOutput) -> Tensor:
        """x: [B, 3, H, W] in [0, 1] -> enhanced [B, 3, H, W] (not clamped in gain mode)."""
        lum = (x * self.luma_weights).sum(dim=1, keepdim=True)  # [B, 1, H, W]
        params = self.llemn(feats, seg)  # [B, out_ch, H/2, W/2]
        if self.dark is not None and self.router is not None:
            # Blended before the curves, which run at full resolution: one set of curves.
            route = self.router(lum) if self.force_route is None else self.force_route
            params = params + route * (self.dark(feats, seg) - params)
        out = self._enhance(x, up(params, 2))
        # Before the gate, so a well-exposed photo the gate leaves alone is not filtered.
        if self.deblock == "fixed":
            out = deblock_8x8(out)
        elif self.deblock == "adaptive":
            out = deblock_adaptive(out, lum)
        if self.gate is None:
            return out
        return x + self.gate(lum) * (out - x)

    def _enhance(self, x: Tensor, params: Tensor) -> Tensor:
        """params: [B, out_ch, H, W], the LLEmN head at full resolution."""
        if self.output_mode == "gain":
            # Gain up to e^4 ~ 55x: enough for luma 4 -> 200.
            return x * torch.exp(4.0 * torch.tanh(params))
        n_curve = 3 * self.curve_maps
        y = self.apply_curves(x, torch.tanh(params[:, :n_curve]))
        if self.output_mode == "curve":
            return y
        # curve_detail: a curve amplifies the input's noise and JPEG blocks with its
        # signal. Keep the curve's coarse image plus a learned correction, and let a
        # gate decide per pixel how much of its fine detail is texture worth keeping.
        coarse = up(F.avg_pool2d(y, kernel_size=4, stride=4), 4)
        residual = params[:, n_curve : n_curve + 3]
        gate = torch.sigmoid(params[:, n_curve + 3 : n_curve + 4] + 2.0)  # starts near 0.88
        return coarse + residual + gate * (y - coarse)

    def apply_curves(self, x: Tensor, alphas: Tensor) -> Tensor:
        """LE(y) = y + a y (1 - y), which stays in [0, 1], iterated; consecutive iterations
        share a map. Written as y (1 + a - a y) with each map sliced once: at full resolution
        these element-wise ops, not the convolutions, are what the export spends time on
        (3 ops per iteration instead of 4, 2 slices instead of 8: 600x400 ORT 2% faster)."""
        y = x
        per_map = self.curve_iters // self.curve_maps
        for j in range(self.curve_maps):
            a = alphas[:, 3 * j : 3 * j + 3]
            one_plus_a = 1.0 + a
            for _ in range(per_map):
                y = y * (one_plus_a - a * y)
        return y

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """x: [B, 3, H, W] in [0, 1] -> (enhanced [B, 3, H, W], mask logits [B, 11, H/4, W/4])."""
        feats = self.encode(x)
        seg = self.segment(feats)
        return self.enhance(x, feats, seg), self.mask_logits(feats, seg)


@dataclass(frozen=True)
class NetConfig:
    """Maps 1:1 onto SLLEN's constructor."""

    enc_widths: tuple[int, ...] = (16, 32, 64, 96)
    enc_depths: tuple[int, ...] = (1, 1, 2, 2)
    seg_width: int = 32
    hsf_channels: int = 16
    dec_widths: tuple[int, ...] = (48, 32, 16)
    act: str = "lrelu"
    use_semantics: bool = True
    output_mode: str = "curve"
    curve_iters: int = 8
    curve_maps: int = 2
    input_norm: bool = False  # old checkpoints lack the key and were trained without it
    global_context: bool = False
    exposure_gate: bool = False
    deblock: str = "off"  # one of DEBLOCK_MODES
    mask_head: bool = False
    mask_refine: int = 2  # residual blocks per coarse level of the mask head
    dark_expert: bool = False

    @classmethod
    def from_dict(cls, d: dict[str, object]) -> NetConfig:
        kw = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}
        if isinstance(kw.get("deblock"), bool):  # configs and checkpoints before "adaptive"
            kw["deblock"] = "fixed" if kw["deblock"] else "off"
        return cls(**kw)  # type: ignore[arg-type]


# v3 (measured on held-out SICE, equal 14-min budgets): global context + curve_detail 21.34 dB,
# global context + plain curve 20.79, v2 (neither, 31 min) 20.07.
_V3 = NetConfig(input_norm=True, global_context=True, output_mode="curve_detail")
VARIANTS: dict[str, NetConfig] = {
    "small": _V3,
    "small_nosem": replace(_V3, use_semantics=False),
    "large": replace(
        _V3,
        enc_widths=(32, 64, 128, 192),
        enc_depths=(1, 2, 3, 3),
        seg_width=64,
        hsf_channels=32,
        dec_widths=(96, 64, 32),
        curve_maps=4,
    ),
}
DEFAULT_VARIANT = "small"


def build(cfg: NetConfig) -> SLLEN:
    return SLLEN(**cfg.__dict__)
