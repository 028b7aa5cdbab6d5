"""A time-conditioned U-Net for images, registered as network "unet".

The layout follows the DDPM U-Net (Ho et al. 2020, arXiv:2006.11239, Appendix B): a 3x3 stem, then per
resolution level ``num_res_blocks`` residual blocks (GroupNorm -> SiLU -> conv, the time embedding added
between the two convolutions, dropout before the second), optional self-attention at the resolutions in
``attn_resolutions``, a stride-2 downsampling between levels; a middle of block -> attention -> block; the
mirrored decoder with skip connections (``num_res_blocks + 1`` blocks per level, nearest-neighbour
upsampling) and a GroupNorm -> SiLU -> conv head. DDPM's CIFAR-10 model is ``ch=128, ch_mult=(1, 2, 2, 2),
num_res_blocks=2, attn_resolutions=(16,), dropout=0.1`` (about 35.7M parameters); for 8x8 digits on a CPU
``ch=32, ch_mult=(1, 2), num_res_blocks=1`` is enough.

The head has ``out_mult * C`` channels, so methods that need two outputs per pixel (an encoder's mean and
log-scale) use the same network unchanged.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from odebench.bench.nets.base import NETS
from odebench.bench.nets.embedding import SinusoidalTimeEmbedding


def _norm(channels: int, groups: int) -> nn.GroupNorm:
    # the largest group count <= groups that divides the channels, so narrow tiny nets still normalise
    return nn.GroupNorm(math.gcd(groups, channels), channels)


class ResBlock(nn.Module):
    """h = conv(drop(SiLU(GN(conv(SiLU(GN(x))) + W temb)))); returns skip(x) + h. x: [B, c_in, H, W]."""

    def __init__(self, c_in: int, c_out: int, temb_dim: int, dropout: float, groups: int):
        super().__init__()
        self.norm1, self.conv1 = _norm(c_in, groups), nn.Conv2d(c_in, c_out, 3, padding=1)
        self.temb = nn.Linear(temb_dim, c_out)
        self.norm2, self.conv2 = _norm(c_out, groups), nn.Conv2d(c_out, c_out, 3, padding=1)
        self.drop = nn.Dropout(dropout)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: Tensor, temb: Tensor) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.temb(F.silu(temb))[:, :, None, None]
        h = self.conv2(self.drop(F.silu(self.norm2(h))))
        return self.skip(x) + h


class SelfAttention(nn.Module):
    """Multi-head self-attention over the H * W positions with a residual: x + proj(attn(GN(x)))."""

    def __init__(self, channels: int, heads: int, groups: int):
        super().__init__()
        if channels % heads:
            raise ValueError(f"unet: {channels} channels do not split into attn_heads={heads} heads")
        self.heads = heads
        self.norm = _norm(channels, groups)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = nn.Conv2d(channels, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, self.heads, c // self.heads, h * w).unbind(1)
        # [B, heads, HW, c/heads]; scaled_dot_product_attention picks a fused kernel where one exists
        out = F.scaled_dot_product_attention(q.transpose(-1, -2), k.transpose(-1, -2), v.transpose(-1, -2))
        return x + self.proj(out.transpose(-1, -2).reshape(b, c, h, w))


class Level(nn.Module):
    """The residual blocks (each optionally followed by attention) of one resolution level."""

    def __init__(self, channels_in: list[int], c_out: int, temb_dim: int, attn: bool, heads: int,
                 dropout: float, groups: int):
        super().__init__()
        self.blocks = nn.ModuleList(ResBlock(c, c_out, temb_dim, dropout, groups) for c in channels_in)
        self.attns = nn.ModuleList(SelfAttention(c_out, heads, groups) if attn else nn.Identity()
                                   for _ in channels_in)


@NETS.register("unet")
class UNet(nn.Module):
    """Time-conditioned U-Net f(x, t): x [B, C, H, W], t [B] in [0, 1] -> [B, out_mult * C, H, W].

    Args:
        shape: (C, H, W); H and W must be divisible by 2 ** (len(ch_mult) - 1).
        ch: base width; level i has ``ch * ch_mult[i]`` channels.
        ch_mult: width multiplier per level (one level per entry, halving the resolution between levels).
        num_res_blocks: residual blocks per level on the way down (one more on the way up).
        attn_resolutions: resolutions (feature-map side lengths) that get self-attention after each block.
        mid_attn: self-attention in the middle (lowest resolution), as in DDPM.
        attn_heads: heads of every attention layer.
        dropout: dropout rate inside the residual blocks.
        groups: GroupNorm groups (reduced to a divisor of each width).
        out_mult: output channels = out_mult * C.
    """

    @staticmethod
    def scaled_config(config: dict, width: float, depth: float) -> dict:
        """The config of a U-Net with ``width`` times the base channels (a multiple of its GroupNorm groups, at
        least one group's worth) and ``depth`` times the residual blocks per level (at least one)."""
        out = dict(config)
        groups = config.get("groups", 32)
        out["ch"] = max(groups, round(config.get("ch", 64) * width / groups) * groups)
        out["num_res_blocks"] = max(1, round(config.get("num_res_blocks", 2) * depth))
        return out

    def __init__(self, shape: tuple[int, ...], ch: int = 64, ch_mult: tuple[int, ...] | list[int] = (1, 2, 2),
                 num_res_blocks: int = 2, attn_resolutions: tuple[int, ...] | list[int] = (16,),
                 mid_attn: bool = True, attn_heads: int = 1, dropout: float = 0.0, groups: int = 32,
                 out_mult: int = 1):
        super().__init__()
        if len(shape) != 3:
            raise ValueError(f"unet needs image data of shape (C, H, W); got per-sample shape "
                             f"{tuple(shape)}; use net.name = \"mlp\" for vectors")
        c_img, height, width = shape
        factor = 2 ** (len(ch_mult) - 1)
        if height % factor or width % factor:
            raise ValueError(f"unet: image size {height}x{width} is not divisible by 2^(len(ch_mult) - 1) = "
                             f"{factor} (ch_mult={tuple(ch_mult)}); use fewer levels")
        temb_dim = 4 * ch
        self.embed = nn.Sequential(SinusoidalTimeEmbedding(ch), nn.Linear(ch, temb_dim), nn.SiLU(),
                                   nn.Linear(temb_dim, temb_dim))
        self.stem = nn.Conv2d(c_img, ch, 3, padding=1)
        widths = [ch * m for m in ch_mult]
        attn_at = set(attn_resolutions)
        args = dict(temb_dim=temb_dim, heads=attn_heads, dropout=dropout, groups=groups)

        # encoder: remember every skip's width so the decoder can concatenate it back
        skips, c, res = [ch], ch, height
        self.down, self.downsample = nn.ModuleList(), nn.ModuleList()
        for i, w in enumerate(widths):
            self.down.append(Level([c] + [w] * (num_res_blocks - 1), w, attn=res in attn_at, **args))
            c = w
            skips += [w] * num_res_blocks
            last = i == len(widths) - 1
            self.downsample.append(nn.Identity() if last else nn.Conv2d(c, c, 3, stride=2, padding=1))
            if not last:
                skips.append(c)
                res //= 2
        self.mid = Level([c, c], c, attn=False, **args)
        self.mid_attn = SelfAttention(c, attn_heads, groups) if mid_attn else nn.Identity()

        self.up, self.upsample = nn.ModuleList(), nn.ModuleList()
        for i, w in reversed(list(enumerate(widths))):
            ins = []
            for _ in range(num_res_blocks + 1):
                ins.append(c + skips.pop())
                c = w
            self.up.append(Level(ins, w, attn=res in attn_at, **args))
            self.upsample.append(nn.Conv2d(c, c, 3, padding=1) if i > 0 else nn.Identity())
            res *= 2 if i > 0 else 1
        self.head = nn.Sequential(_norm(c, groups), nn.SiLU(), nn.Conv2d(c, out_mult * c_img, 3, padding=1))

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        """x: [B, C, H, W], t: [B] -> [B, out_mult * C, H, W]."""
        temb = self.embed(t)
        h = self.stem(x)
        hs = [h]
        for level, down in zip(self.down, self.downsample, strict=True):
            for block, attn in zip(level.blocks, level.attns, strict=True):
                h = attn(block(h, temb))
                hs.append(h)
            if not isinstance(down, nn.Identity):
                h = down(h)
                hs.append(h)
        h = self.mid.blocks[1](self.mid_attn(self.mid.blocks[0](h, temb)), temb)
        for level, up in zip(self.up, self.upsample, strict=True):
            for block, attn in zip(level.blocks, level.attns, strict=True):
                h = attn(block(torch.cat([h, hs.pop()], dim=1), temb))
            if not isinstance(up, nn.Identity):
                h = up(F.interpolate(h, scale_factor=2.0, mode="nearest"))
        return self.head(h)
