"""A Gaussian law carried to another by a linear map, where every flow-map method's optimum is closed-form.

x1 = A x0 + b with A symmetric positive definite: the optimal transport map between N(0, I) and N(b, A^2), and the
rectified map of the pair, since the straight paths x_s = ((1 - c s) I + s A) x0 + s b (c = 1 for the linear path,
1 - 1e-5 for the shortcut models' path) never cross. Each path is a straight line run at constant speed, so the
average velocity over any jump equals the instantaneous one, V(x, s) = (A - c I) x0 + b with x0 recovered from x at
time s, and the exact flow map is X(x, r, t) = x + (t - r) V(x, r).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

A = torch.tensor([[1.3, 0.2], [0.2, 0.7]], dtype=torch.float64)
B = torch.tensor([0.5, -0.25], dtype=torch.float64)


def coupled_batch(n: int, seed: int = 0) -> tuple[Tensor, Tensor]:
    """(x0, x1 = A x0 + b), [n, 2] each, float64."""
    x0 = torch.randn(n, 2, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return x0, x0 @ A.T + B


class ExactVelocity(nn.Module):
    """V(x, s) of the coupled pair, with A and b as parameters (so the loss's gradient at them can be read), as a
    network of two times ``(x, s, other)`` that ignores the second (the jump length or the step size)."""

    def __init__(self, c: float = 1.0):
        super().__init__()
        self.a, self.b, self.c = nn.Parameter(A.clone()), nn.Parameter(B.clone()), c

    def forward(self, x: Tensor, s: Tensor, other: Tensor) -> Tensor:
        eye = torch.eye(2, dtype=x.dtype)
        m = (1 - self.c * s)[:, None, None] * eye + s[:, None, None] * self.a  # x = m x0 + s b
        x0 = torch.linalg.solve(m, (x - s[:, None] * self.b).unsqueeze(-1)).squeeze(-1)
        return x0 @ (self.a - self.c * eye).T + self.b


def exact_map(x: Tensor, r: Tensor, t: Tensor, c: float = 1.0) -> Tensor:
    """X(x, r, t) of the coupled pair's flow."""
    with torch.no_grad():
        return x + (t - r)[:, None] * ExactVelocity(c)(x, r, t - r)
