"""Every affine path that inverts its log-SNR in closed form inverts it: log(alpha_t / sigma_t) at the returned
t is the log-SNR asked for, as the generic bisection finds it (noise-level grids and the EDM sampler's churn
map log-SNR values back to each path's own t through this inverse)."""

from __future__ import annotations

import pytest
import torch

from odebench.bench.core.schedules import NoiseSchedule
from odebench.methods.probability_paths import PATHS, path_schedule

LAM = torch.linspace(-6.0, 6.0, 25, dtype=torch.float64)
#: the paths whose log-SNR is monotone in t, so that it has an inverse to give in closed form
MONOTONE = ("linear", "ot", "trig", "vp")


@pytest.mark.parametrize("name", PATHS.names())
def test_closed_form_inverse_gives_the_asked_log_snr(name):
    path = PATHS.get(name)()
    t = path.t_of_log_snr(LAM)
    if t is None:
        assert name not in MONOTONE
        pytest.skip("no closed form: its schedule bisects")
    c = path.coefficients(t)
    torch.testing.assert_close(torch.log(c.alpha_t / c.sigma_t), LAM, rtol=0, atol=1e-9)
    sched = path_schedule(path)
    t0, t1 = 1e-4, min(path.t_max, 1 - 1e-4)
    inner = LAM[(LAM > sched.log_snr(torch.tensor(t0, dtype=torch.float64)))
                & (LAM < sched.log_snr(torch.tensor(t1, dtype=torch.float64)))]
    torch.testing.assert_close(sched.t_of_log_snr(inner, t0, t1), NoiseSchedule.t_of_log_snr(sched, inner, t0, t1),
                               rtol=0, atol=1e-9)
