"""Sample-quality metrics against closed forms for Gaussians."""

import math

import numpy as np
import pytest
import torch

from odebench.metrics.quality import (
    energy_distance,
    frechet_distance,
    frechet_from_samples,
    gaussian_stats,
    mmd_rbf,
    sliced_wasserstein,
    wasserstein2,
)


def gaussians(n, m, s, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, len(m), generator=g, dtype=torch.float64) * torch.tensor(s) + torch.tensor(m)


def exact_w2_diag(m1, s1, m2, s2):
    """W2 between N(m1, diag s1^2) and N(m2, diag s2^2): sqrt(|m1 - m2|^2 + sum (s1 - s2)^2)."""
    m1, s1, m2, s2 = map(np.asarray, (m1, s1, m2, s2))
    return math.sqrt(((m1 - m2) ** 2).sum() + ((s1 - s2) ** 2).sum())


def test_w2_approaches_closed_form_as_samples_grow():
    m1, s1, m2, s2 = [0.0, 0.0], [1.0, 1.0], [2.0, -1.0], [0.5, 2.0]
    exact = exact_w2_diag(m1, s1, m2, s2)
    errors = []
    for n in (200, 800, 2500):
        errors.append(abs(wasserstein2(gaussians(n, m1, s1, 1), gaussians(n, m2, s2, 2)) - exact))
    assert errors[-1] < 0.1 * exact
    assert errors[-1] < errors[0]


def test_w2_of_identical_sets_is_zero():
    x = gaussians(300, [0.0, 1.0], [1.0, 1.0], 3)
    assert wasserstein2(x, x) == pytest.approx(0.0, abs=1e-7)


def test_frechet_matches_closed_form_for_gaussians():
    """FD of two Gaussians equals W2^2 between them; for diagonal covariances it has a closed form."""
    m1, s1, m2, s2 = [0.0, 0.0, 1.0], [1.0, 2.0, 0.5], [1.0, -1.0, 1.0], [1.5, 1.0, 0.5]
    exact = exact_w2_diag(m1, s1, m2, s2) ** 2
    fd = frechet_distance(np.array(m1), np.diag(np.square(s1)), np.array(m2), np.diag(np.square(s2)))
    assert fd == pytest.approx(exact, rel=1e-9)
    est = frechet_from_samples(gaussians(20000, m1, s1, 4), gaussians(20000, m2, s2, 5))
    assert est == pytest.approx(exact, rel=0.05)


def test_frechet_with_full_covariances_matches_sqrtm_free_formula():
    """For 2x2 SPD matrices tr sqrt(M) has a closed form: sqrt(tr M + 2 sqrt(det M)) for M = C1 C2."""
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(2, 2)), rng.normal(size=(2, 2))
    c1, c2 = a @ a.T + 0.1 * np.eye(2), b @ b.T + 0.1 * np.eye(2)
    mu1, mu2 = rng.normal(size=2), rng.normal(size=2)
    m = c1 @ c2
    tr_sqrt = math.sqrt(np.trace(m) + 2 * math.sqrt(np.linalg.det(m)))
    exact = ((mu1 - mu2) ** 2).sum() + np.trace(c1) + np.trace(c2) - 2 * tr_sqrt
    assert frechet_distance(mu1, c1, mu2, c2) == pytest.approx(exact, rel=1e-8)


def test_frechet_is_exact_and_quiet_for_singular_covariances():
    """Digits-like statistics: 10 constant pixels (zero rows and columns) and a rank-deficient rest. With a
    shared eigenbasis Q, C1 = Q diag(a) Q^T and C2 = Q diag(b) Q^T give FD = |mu1 - mu2|^2 + sum (sqrt(a) -
    sqrt(b))^2, zeros included, and no warning is raised (a general sqrtm of C1 C2 warns here)."""
    import warnings

    rng = np.random.default_rng(1)
    q = np.zeros((40, 40))
    q[10:, 10:], _ = np.linalg.qr(rng.normal(size=(30, 30)))
    a, b = rng.uniform(0.1, 2.0, 40), rng.uniform(0.1, 2.0, 40)
    a[:10], b[:10] = 0.0, 0.0  # constant pixels
    a[10:20], b[15:25] = 0.0, 0.0  # two further null spaces, overlapping in 5 directions
    mu1, mu2 = rng.normal(size=40), rng.normal(size=40)
    exact = ((mu1 - mu2) ** 2).sum() + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fd = frechet_distance(mu1, (q * a) @ q.T, mu2, (q * b) @ q.T)
    assert fd == pytest.approx(exact, rel=1e-7)


def _clean_fid_frechet():
    """clean-fid's own ``frechet_distance``, if clean-fid is installed.

    cleanfid.fid imports torchvision at module level (for Inception and resizing), which frechet_distance
    never uses, and torchvision cannot sit beside a CPU-only torch wheel on every machine. When the import
    fails for that reason, the function is taken from clean-fid's installed source file and evaluated alone
    (it needs numpy and scipy.linalg only), so the comparison is always against clean-fid's code.
    """
    import ast
    import importlib.util
    from pathlib import Path

    spec = importlib.util.find_spec("cleanfid")
    if spec is None:
        pytest.skip("clean-fid (optional extra 'fid') is not installed")
    try:
        import cleanfid.fid

        return cleanfid.fid.frechet_distance
    except ImportError:
        source = (Path(spec.submodule_search_locations[0]) / "fid.py").read_text()
        node = next(n for n in ast.parse(source).body
                    if isinstance(n, ast.FunctionDef) and n.name == "frechet_distance")
        from scipy import linalg

        namespace = {"np": np, "linalg": linalg}
        exec(compile(ast.Module(body=[node], type_ignores=[]), "cleanfid/fid.py", "exec"), namespace)
        return namespace["frechet_distance"]


def test_frechet_agrees_with_clean_fid():
    clean_fd = _clean_fid_frechet()
    x, y = gaussians(500, [0.0] * 4, [1.0] * 4, 6), gaussians(500, [0.3] * 4, [1.2] * 4, 7)
    (mu1, c1), (mu2, c2) = gaussian_stats(x), gaussian_stats(y)
    assert frechet_distance(mu1, c1, mu2, c2) == pytest.approx(clean_fd(mu1, c1, mu2, c2), rel=1e-6)


def test_mmd_near_zero_for_same_law_and_positive_for_shift():
    same = mmd_rbf(gaussians(1000, [0.0, 0.0], [1.0, 1.0], 8), gaussians(1000, [0.0, 0.0], [1.0, 1.0], 9))
    shifted = mmd_rbf(gaussians(1000, [0.0, 0.0], [1.0, 1.0], 8), gaussians(1000, [1.0, 0.0], [1.0, 1.0], 9))
    assert abs(same) < 0.01
    assert shifted > 0.1


def test_mmd_matches_closed_form_for_gaussians_with_fixed_bandwidth():
    """With one bandwidth h and X ~ N(a, I_d), Y ~ N(b, I_d):
    E k(X, Y) = (h^2 / (h^2 + 2))^{d/2} exp(-|a - b|^2 / (2 (h^2 + 2)))."""
    torch.manual_seed(0)
    d, shift = 2, 1.0
    x, y = gaussians(3000, [0.0, 0.0], [1.0, 1.0], 10), gaussians(3000, [shift, 0.0], [1.0, 1.0], 11)
    z = torch.cat([x, y])
    d2 = torch.cdist(z, z).pow(2)
    median = d2[d2 > 0].median().sqrt().item()
    h = median  # the scale-1 kernel of mmd_rbf, alone
    ek = lambda sq: (h**2 / (h**2 + 2)) ** (d / 2) * math.exp(-sq / (2 * (h**2 + 2)))  # noqa: E731
    exact = 2 * ek(0.0) - 2 * ek(shift**2)
    assert mmd_rbf(x, y, scales=(1.0,)) == pytest.approx(exact, abs=0.01)


def test_sliced_w_closed_form_for_shift():
    """Shift by a vector u of two equal laws: sliced W2^2 = E (theta . u)^2 = |u|^2 / d."""
    x = gaussians(4000, [0.0, 0.0], [1.0, 1.0], 12)
    y = x + torch.tensor([1.0, 0.0], dtype=torch.float64)
    est = sliced_wasserstein(x, y, n_projections=4000, gen=torch.Generator().manual_seed(0))
    assert est == pytest.approx(math.sqrt(0.5), rel=0.03)


def test_energy_distance_zero_for_same_set_and_positive_for_shift():
    x = gaussians(500, [0.0], [1.0], 13)
    assert energy_distance(x, x) == pytest.approx(0.0, abs=1e-12)
    assert energy_distance(x, x + 1) > 0.3


def test_sliced_w_of_sets_of_different_sizes_compares_quantile_functions():
    """Unequal sizes in 1-D: both quantile functions on the grid of max(N, M) levels, then the mean square gap.

    x = {0, 1, 2} and y = {0, 4}: the quantiles at (0, 1/2, 1) are (0, 1, 2) and (0, 2, 4), so
    sliced W2 = sqrt((0 + 1 + 4) / 3) for every direction (theta = +-1 in one dimension).
    """
    x = torch.tensor([[0.0], [1.0], [2.0]], dtype=torch.float64)
    y = torch.tensor([[4.0], [0.0]], dtype=torch.float64)
    g = torch.Generator().manual_seed(0)
    assert sliced_wasserstein(x, y, n_projections=5, gen=g) == pytest.approx(math.sqrt(5 / 3), rel=1e-12)
    assert sliced_wasserstein(y, x, n_projections=5, gen=g) == pytest.approx(math.sqrt(5 / 3), rel=1e-12)


def test_sliced_w_of_a_translate_is_the_mean_square_projected_shift():
    """y = x + u (same size): every sorted projection moves by theta . u, so sliced W2^2 = mean_theta (theta . u)^2
    over the very directions drawn from the generator (unit columns of a standard normal draw)."""
    x = gaussians(50, [0.0, 0.0, 0.0], [1.0, 2.0, 0.5], 3)
    u = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    theta = torch.randn(3, 7, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    theta = theta / theta.norm(dim=0)
    exact = math.sqrt(float((u @ theta).pow(2).mean()))
    est = sliced_wasserstein(x, x + u, n_projections=7, gen=torch.Generator().manual_seed(5))
    assert est == pytest.approx(exact, rel=1e-10)


def test_sliced_w_draws_its_directions_from_the_generator_with_256_by_default():
    """The directions come from ``gen`` alone (same seed, same value, whatever the global stream), 256 of them
    unless told otherwise."""
    x, y = gaussians(40, [0.0, 0.0], [1.0, 1.0], 1), gaussians(40, [1.0, 0.0], [2.0, 1.0], 2)
    torch.manual_seed(1)
    a = sliced_wasserstein(x, y, gen=torch.Generator().manual_seed(9))
    torch.manual_seed(2)
    b = sliced_wasserstein(x, y, gen=torch.Generator().manual_seed(9))
    c = sliced_wasserstein(x, y, 256, gen=torch.Generator().manual_seed(9))
    assert a == b == c
    assert sliced_wasserstein(x, y, 255, gen=torch.Generator().manual_seed(9)) != a


def _mmd_by_hand(x, y, scales):
    """Unbiased MMD^2 written out with loops; bandwidths scale the median of the nonzero pairwise distances
    (torch's median: the lower middle value)."""
    z = [list(map(float, r)) for r in torch.cat([x, y])]
    sq = [[sum((a - b) ** 2 for a, b in zip(p, q, strict=True)) for q in z] for p in z]
    nonzero = sorted(v for row in sq for v in row if v > 0)
    median = math.sqrt(nonzero[(len(nonzero) - 1) // 2])

    def k(i, j):
        return sum(math.exp(-sq[i][j] / (2 * (s * median) ** 2)) for s in scales)

    n, m = len(x), len(y)
    kxx = sum(k(i, j) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    kyy = sum(k(n + i, n + j) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    kxy = sum(k(i, n + j) for i in range(n) for j in range(m)) / (n * m)
    return kxx + kyy - 2 * kxy


def test_mmd_is_the_unbiased_kernel_sum_written_out():
    """MMD^2 of two small sets of different sizes equals the U-statistic written out term by term, with the
    bandwidths set by the median of the nonzero squared distances, for the default and a single scale."""
    x = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0]], dtype=torch.float64)
    y = torch.tensor([[0.5, 0.5], [3.0, 1.0], [1.0, -1.0], [2.0, 2.0], [-1.0, 0.0]], dtype=torch.float64)
    assert mmd_rbf(x, y) == pytest.approx(_mmd_by_hand(x, y, (0.5, 1.0, 2.0, 4.0)), rel=1e-12)
    assert mmd_rbf(y, x, scales=(1.0,)) == pytest.approx(_mmd_by_hand(y, x, (1.0,)), rel=1e-12)


def test_wasserstein2_is_the_optimal_assignment_by_hand():
    """Three points against three: W2^2 is the cheapest of the 3! matchings, averaged over the points; with
    unequal sizes the uniform weights split a point's mass (one point against two: the mean squared distance)."""
    import itertools

    x = torch.tensor([[0.0, 0.0], [2.0, 0.0], [0.0, 3.0]], dtype=torch.float64)
    y = torch.tensor([[1.0, 1.0], [2.0, 2.0], [-1.0, 0.0]], dtype=torch.float64)
    sq = lambda p, q: float(((p - q) ** 2).sum())  # noqa: E731
    best = min(sum(sq(x[i], y[s]) for i, s in enumerate(perm)) / 3 for perm in itertools.permutations(range(3)))
    assert wasserstein2(x, y) == pytest.approx(math.sqrt(best), rel=1e-12)
    one = x[:1]
    assert wasserstein2(one, y[:2]) == pytest.approx(math.sqrt((sq(x[0], y[0]) + sq(x[0], y[1])) / 2), rel=1e-12)


def test_capped_metrics_compare_equal_size_prefixes_of_at_most_max_points():
    """The w2 / mmd / energy entries see the first min(N, M, max_points) samples and held-out points, with
    max_points read from that metric's own options (default: no cap below the smaller set)."""
    from odebench.metrics.quality import _capped
    from odebench.metrics.registry import METRICS, EvalContext

    s, r = gaussians(7, [0.0, 0.0], [1.0, 1.0], 4), gaussians(5, [1.0, 0.0], [1.0, 1.0], 5)
    for a, b in ((s, r), (r, s)):
        x, y = _capped(EvalContext(samples=a, reference=b), "w2", 4000)
        assert torch.equal(x, a[:5]) and torch.equal(y, b[:5])
        x, y = _capped(EvalContext(samples=a, reference=b), "w2", 3)
        assert torch.equal(x, a[:3]) and torch.equal(y, b[:3])
    ctx = EvalContext(samples=s, reference=r, options={"mmd": {"max_points": 4}, "w2": {"max_points": 2}})
    x, y = _capped(ctx, "mmd", 4000)
    assert torch.equal(x, s[:4]) and torch.equal(y, r[:4])
    assert METRICS.get("mmd").fn(ctx) == mmd_rbf(s[:4], r[:4])
    assert METRICS.get("w2").fn(ctx) == wasserstein2(s[:2], r[:2])
    assert METRICS.get("energy").fn(ctx) == energy_distance(s[:5], r[:5])
