"""Known-answer tests of the input encodings (zoo.nn.encodings)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from zoo.nn.encodings import (
    HASH_PRIMES,
    HashEncoding,
    PositionalEncoding,
    SphericalHarmonicsEncoding,
    hash_level_resolutions,
)


def test_positional_encoding_values_and_order():
    enc = PositionalEncoding(3, num_freqs=2)
    x = torch.tensor([[0.5, -1.0, 2.0]])
    y = enc(x)
    assert enc.out_dim == 15 and y.shape == (1, 15)
    expected = [0.5, -1.0, 2.0]
    for f in (1.0, 2.0):  # per frequency: sin of x, y, z then cos of x, y, z (run_nerf.py order)
        expected += [math.sin(f * v) for v in (0.5, -1.0, 2.0)]
        expected += [math.cos(f * v) for v in (0.5, -1.0, 2.0)]
    assert torch.allclose(y[0], torch.tensor(expected), atol=1e-6)
    assert PositionalEncoding(3, 10).out_dim == 63 and PositionalEncoding(3, 4).out_dim == 27
    no_input = PositionalEncoding(1, 1, include_input=False, pi=True)
    assert torch.allclose(no_input(torch.tensor([[0.5]])), torch.tensor([[1.0, 0.0]]), atol=1e-6)
    with pytest.raises(ValueError, match=r"\(\.\.\., 3\)"):
        enc(torch.zeros(4, 2))


def test_spherical_harmonics_are_orthonormal():
    # Midpoint quadrature on a latitude-longitude grid (weights sin(theta) dtheta dphi).
    nt, nphi = 240, 480
    theta = (torch.arange(nt, dtype=torch.float64) + 0.5) * math.pi / nt
    phi = (torch.arange(nphi, dtype=torch.float64) + 0.5) * 2 * math.pi / nphi
    th, ph = torch.meshgrid(theta, phi, indexing="ij")
    d = torch.stack([th.sin() * ph.cos(), th.sin() * ph.sin(), th.cos()], -1).reshape(-1, 3)
    area = (th.sin() * (math.pi / nt) * (2 * math.pi / nphi)).reshape(-1)
    y = SphericalHarmonicsEncoding(4)(d)  # (M, 16)
    gram = (y * area[:, None]).T @ y
    assert y.shape[-1] == 16
    assert torch.allclose(gram, torch.eye(16, dtype=torch.float64), atol=1e-3)


def test_hash_level_resolutions_geometric():
    res = hash_level_resolutions(16, 16, 512)
    assert res[0] == 16 and res[-1] == 512 and len(res) == 16
    ratios = [b / a for a, b in zip(res, res[1:], strict=False)]
    assert all(1.2 < r < 1.3 for r in ratios)  # b = 32^(1/15) = 1.26
    assert hash_level_resolutions(5, 16, 256) == [16, 32, 64, 128, 256]


def _naive_encoding(enc: HashEncoding, x: torch.Tensor) -> torch.Tensor:
    """Reference in Python integers: explicit corners, explicit hash, explicit weights."""
    table = enc.table.detach().double()
    out = torch.zeros(len(x), enc.num_levels, enc.features_per_level, dtype=torch.float64)
    for i, p in enumerate(x.double().tolist()):
        for level, r in enumerate(enc.resolutions):
            dense = enc.dense_levels[level]
            scaled = [min(max(c, 0.0), 1.0) * r for c in p]
            lo = [min(math.floor(s), r - 1) for s in scaled]
            for corner in range(8):
                bits = [(corner >> a) & 1 for a in range(3)]
                v = [lo[a] + bits[a] for a in range(3)]
                w = math.prod(
                    (scaled[a] - lo[a]) if bits[a] else (1 - (scaled[a] - lo[a])) for a in range(3)
                )
                if dense:
                    row = v[0] + v[1] * (r + 1) + v[2] * (r + 1) ** 2
                else:
                    h = (v[0] * HASH_PRIMES[0]) ^ (v[1] * HASH_PRIMES[1]) ^ (v[2] * HASH_PRIMES[2])
                    row = h % enc.table_size
                out[i, level] += w * table[enc.level_offsets[level] + row]
    return out.reshape(len(x), -1)


@pytest.mark.parametrize("log2_t,max_res", [(12, 128), (14, 64), (24, 4096)])
def test_hash_encoding_matches_naive_reference(log2_t, max_res):
    torch.manual_seed(0)
    enc = HashEncoding(6, 2, log2_t, 4, max_res, init_scale=1.0)
    assert 0 < enc.num_dense < 6  # both dense and hashed levels are exercised
    # (24, 4096) cannot be computed in int32 without overflow: exercises the int64 path.
    assert enc.index_dtype == (torch.long if log2_t == 24 else torch.int32)
    x = torch.cat([torch.rand(20, 3), torch.tensor([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]])])
    assert torch.allclose(enc(x).double(), _naive_encoding(enc, x), atol=1e-5)


def test_hash_encoding_is_exact_at_vertices():
    torch.manual_seed(0)
    enc = HashEncoding(4, 2, 10, 4, 32, init_scale=1.0)  # resolutions 4, 8, 16, 32
    for level, r in enumerate(enc.resolutions):
        v = torch.randint(0, r + 1, (50, 3))
        y = enc(v.float() / r).view(50, 4, 2)[:, level]
        if enc.dense_levels[level]:
            rows = v[:, 0] + v[:, 1] * (r + 1) + v[:, 2] * (r + 1) ** 2
        else:
            h = [
                (int(a) * HASH_PRIMES[0]) ^ (int(b) * HASH_PRIMES[1]) ^ (int(c) * HASH_PRIMES[2])
                for a, b, c in v.tolist()
            ]
            rows = torch.tensor(h) % enc.table_size
        expected = enc.table.detach()[enc.level_offsets[level] + rows]
        assert torch.allclose(y, expected, atol=1e-6)


def test_dense_levels_equal_trilinear_grid_sample():
    torch.manual_seed(1)
    enc = HashEncoding(3, 2, 16, 8, 32, init_scale=1.0)  # all dense: (32 + 1)^3 <= 2^16
    assert enc.num_dense == 3
    x = torch.rand(300, 3)
    y = enc(x).view(300, 3, 2)
    for level, r in enumerate(enc.resolutions):
        n = r + 1
        rows = enc.table.detach()[enc.level_offsets[level] : enc.level_offsets[level] + n**3]
        grid = rows.view(n, n, n, 2).permute(3, 0, 1, 2)[None]  # (1, F, z, y, x)
        coords = (x * 2 - 1)[None, :, None, None, :]  # grid_sample's (x, y, z) in [-1, 1]
        ref = F.grid_sample(grid, coords, mode="bilinear", align_corners=True)
        assert torch.allclose(y[:, level], ref[0, :, :, 0, 0].T, atol=1e-5)


def test_hash_encoding_is_continuous_across_cells():
    torch.manual_seed(2)
    enc = HashEncoding(8, 2, 12, 4, 256, init_scale=1.0)
    # Points just either side of many cell faces of the finest level.
    r = enc.resolutions[-1]
    face = (torch.randint(1, r, (100, 1)).float() / r).expand(100, 3).clone()
    face[:, 1:] = torch.rand(100, 2)
    eps = 1e-5
    below, above = face.clone(), face.clone()
    below[:, 0] -= eps
    above[:, 0] += eps
    jump = (enc(above) - enc(below)).abs().max()
    # Lipschitz bound: |dy| <= 2 * max|table| * N_max * |dx| per level feature.
    assert jump < 2 * 1.0 * r * 2 * eps + 1e-6


def test_hash_encoding_gradients_touch_only_looked_up_rows():
    enc = HashEncoding(2, 2, 12, 4, 64)
    enc(torch.tensor([[0.3, 0.6, 0.9]])).sum().backward()
    touched = (enc.table.grad.abs().sum(-1) > 0).sum().item()
    assert 1 <= touched <= 16  # 8 corners per level, 2 levels
    with pytest.raises(ValueError, match=r"\(N, 3\)"):
        enc(torch.zeros(2, 2))
