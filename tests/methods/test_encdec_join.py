"""The encoder-decoder path at the point where its two pieces meet (t = 1/2)."""

from __future__ import annotations

import torch

from odebench.methods.probability_paths import EncoderDecoderPath


def test_half_time_belongs_to_the_decoding_piece():
    """alpha_t = cos^2(pi t) 1[t >= 1/2], sigma_t = cos^2(pi t) 1[t < 1/2]: at t = 1/2 the source is fully
    encoded (no x0 weight nor slope at all), for float32 and float64 times alike."""
    for dtype in (torch.float32, torch.float64):
        c = EncoderDecoderPath().coefficients(torch.tensor([0.5], dtype=dtype))
        assert float(c.sigma_t) == 0.0 and float(c.d_sigma_t) == 0.0
