"""Input encodings for coordinate networks.

- :class:`PositionalEncoding`: NeRF's frequency encoding (Mildenhall et al., ECCV 2020, eq. 4).
- :class:`SphericalHarmonicsEncoding`: real spherical harmonics of a unit direction, the view
  direction encoding of Instant-NGP (Müller et al., SIGGRAPH 2022, Sec. 5.4: degree 4, 16
  coefficients).
- :class:`HashEncoding`: Instant-NGP's multiresolution hash encoding (Müller et al. 2022,
  Sec. 3), in plain PyTorch (no CUDA extension), so the same code runs on CPU and GPU.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

# The spatial-hash primes of Instant-NGP (Müller et al. 2022, eq. 4; pi_1 = 1 keeps the first
# dimension's coherence).
HASH_PRIMES = (1, 2654435761, 805459861)


class PositionalEncoding(nn.Module):
    """``gamma(p) = (p, sin(2^0 p), cos(2^0 p), ..., sin(2^{L-1} p), cos(2^{L-1} p))``, per
    coordinate.

    NeRF uses L = 10 for positions and L = 4 for directions, with the input itself included
    (``include_input``) and without the paper's factor pi, as the reference ``run_nerf.py``
    does (``pi=True`` puts it back).

    Shapes: (..., D) -> (..., D * (include_input + 2 L)).
    """

    def __init__(
        self, in_dim: int, num_freqs: int, include_input: bool = True, pi: bool = False
    ) -> None:
        super().__init__()
        if in_dim < 1 or num_freqs < 0:
            raise ValueError(f"need in_dim >= 1 and num_freqs >= 0, got {in_dim}, {num_freqs}")
        self.in_dim = in_dim
        self.num_freqs = num_freqs
        self.include_input = include_input
        freqs = 2.0 ** torch.arange(num_freqs, dtype=torch.float32)
        if pi:
            freqs = freqs * math.pi
        self.register_buffer("freqs", freqs, persistent=False)

    @property
    def out_dim(self) -> int:
        return self.in_dim * (int(self.include_input) + 2 * self.num_freqs)

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[-1] != self.in_dim:
            raise ValueError(f"expected (..., {self.in_dim}) inputs, got {tuple(x.shape)}")
        scaled = x[..., None, :] * self.freqs[:, None].to(x)  # (..., L, D)
        sc = torch.stack([torch.sin(scaled), torch.cos(scaled)], dim=-2)  # (..., L, 2, D)
        parts = sc.flatten(-3)  # (..., L * 2 * D): sin, cos of each frequency in turn
        return torch.cat([x, parts], dim=-1) if self.include_input else parts


class SphericalHarmonicsEncoding(nn.Module):
    """Real spherical harmonics ``Y_lm(d)`` for ``l < degree`` of unit vectors ``d``.

    Orthonormal on the sphere (``int Y_i Y_j dOmega = delta_ij``); the constants are the
    normalisations ``sqrt((2l + 1) / (4 pi) * (l - |m|)! / (l + |m|)!)`` (times sqrt 2 for
    m != 0) of the real SH basis in Cartesian form. Shapes: (..., 3) -> (..., degree^2).
    """

    def __init__(self, degree: int = 4) -> None:
        super().__init__()
        if not 1 <= degree <= 4:
            raise ValueError(f"degree must be in 1..4, got {degree}")
        self.degree = degree

    @property
    def out_dim(self) -> int:
        return self.degree**2

    def forward(self, d: Tensor) -> Tensor:
        if d.shape[-1] != 3:
            raise ValueError(f"expected (..., 3) directions, got {tuple(d.shape)}")
        x, y, z = d.unbind(-1)
        out = [torch.full_like(x, 0.28209479177387814)]  # 1 / (2 sqrt(pi))
        if self.degree > 1:
            c1 = 0.4886025119029199  # sqrt(3 / (4 pi))
            out += [-c1 * y, c1 * z, -c1 * x]
        if self.degree > 2:
            xx, yy, zz = x * x, y * y, z * z
            out += [
                1.0925484305920792 * x * y,  # sqrt(15 / pi) / 2
                -1.0925484305920792 * y * z,
                0.31539156525252005 * (3.0 * zz - 1.0),  # sqrt(5 / pi) / 4
                -1.0925484305920792 * x * z,
                0.5462742152960396 * (xx - yy),  # sqrt(15 / pi) / 4
            ]
        if self.degree > 3:
            out += [
                -0.5900435899266435 * y * (3.0 * xx - yy),  # sqrt(35 / (2 pi)) / 4
                2.890611442640554 * x * y * z,  # sqrt(105 / pi) / 2
                -0.4570457994644658 * y * (5.0 * zz - 1.0),  # sqrt(21 / (2 pi)) / 4
                0.3731763325901154 * z * (5.0 * zz - 3.0),  # sqrt(7 / pi) / 4
                -0.4570457994644658 * x * (5.0 * zz - 1.0),
                1.445305721320277 * z * (xx - yy),  # sqrt(105 / pi) / 4
                -0.5900435899266435 * x * (xx - 3.0 * yy),
            ]
        return torch.stack(out, dim=-1)


def hash_level_resolutions(num_levels: int, base_resolution: int, max_resolution: int) -> list[int]:
    """``N_l = floor(N_min * b^l)`` with ``b = exp((ln N_max - ln N_min) / (L - 1))``
    (Müller et al. 2022, eqs. 2-3)."""
    if num_levels == 1:
        return [int(base_resolution)]
    b = math.exp((math.log(max_resolution) - math.log(base_resolution)) / (num_levels - 1))
    # The small epsilon keeps exact powers (e.g. 16 * 2^l) from flooring one below.
    return [int(math.floor(base_resolution * b**level + 1e-6)) for level in range(num_levels)]


class HashEncoding(nn.Module):
    """Multiresolution hash encoding (Müller et al., SIGGRAPH 2022, Sec. 3).

    Level ``l`` is a grid of resolution ``N_l`` over the unit cube whose ``(N_l + 1)^3``
    vertices carry F trainable features. A point ``x`` in [0, 1]^3 is scaled to ``x N_l``; the
    features of the 8 surrounding vertices are trilinearly interpolated; the L results are
    concatenated. Vertex features live in a table of ``T = 2^log2_table_size`` rows per level:
    coarse levels whose grid fits (``(N_l + 1)^3 <= T``) index it densely (one row per vertex,
    no collisions), finer levels through the spatial hash
    ``h(i) = (i_x pi_1 XOR i_y pi_2 XOR i_z pi_3) mod T`` with the primes of :data:`HASH_PRIMES`.
    Tables start as U(-1e-4, 1e-4) (paper Sec. 4).

    Paper settings for NeRF: L = 16, F = 2, T = 2^19, N_min = 16, N_max = 2048 * scene scale.
    The rows of all levels share one parameter tensor (rows of level l start at
    ``level_offsets[l]``); the dense and the hashed levels are each gathered by one
    ``index_select`` (its backward is an ``index_add`` into the dense gradient). Index
    arithmetic is done in int32 where it cannot overflow.

    Shapes: (N, 3) in [0, 1] (clamped) -> (N, L * F).
    """

    def __init__(
        self,
        num_levels: int = 16,
        features_per_level: int = 2,
        log2_table_size: int = 19,
        base_resolution: int = 16,
        max_resolution: int = 2048,
        init_scale: float = 1e-4,
    ) -> None:
        super().__init__()
        if num_levels < 1 or features_per_level < 1 or not 1 <= log2_table_size <= 30:
            raise ValueError(
                f"invalid hash encoding: num_levels={num_levels}, features_per_level="
                f"{features_per_level}, log2_table_size={log2_table_size}"
            )
        if not 1 <= base_resolution <= max_resolution:
            raise ValueError(
                f"need 1 <= base_resolution <= max_resolution, got {base_resolution}, "
                f"{max_resolution}"
            )
        self.num_levels = num_levels
        self.features_per_level = features_per_level
        self.table_size = 2**log2_table_size
        self.resolutions = hash_level_resolutions(num_levels, base_resolution, max_resolution)
        self.dense_levels = [(r + 1) ** 3 <= self.table_size for r in self.resolutions]
        # Dense levels come first (resolution grows with l): split once for vectorised lookups.
        self.num_dense = sum(self.dense_levels)
        if self.dense_levels != sorted(self.dense_levels, reverse=True):
            raise ValueError(f"resolutions must not decrease, got {self.resolutions}")
        # Table layout: the hashed levels first, level j at rows [j T, (j + 1) T), so that a
        # level's offset has no bits in common with a hash value (offset | h == offset + h);
        # then the dense levels, one row per vertex ((N_l + 1)^3 rows).
        k = self.num_dense
        hashed_offsets = [j * self.table_size for j in range(num_levels - k)]
        dense_sizes = [(r + 1) ** 3 for r in self.resolutions[:k]]
        dense_offsets, start = [], (num_levels - k) * self.table_size
        for size in dense_sizes:
            dense_offsets.append(start)
            start += size
        total_rows = start
        # Index arithmetic in int32 when it cannot overflow (half the memory traffic of int64):
        # products c * (pi mod T) with c <= N_max + 1 and global rows must stay below 2^31.
        max_c = max(self.resolutions) + 1
        small = max_c * self.table_size < 2**31 and total_rows < 2**31
        self.index_dtype = torch.int32 if small else torch.long
        primes = [p % self.table_size for p in HASH_PRIMES] if small else list(HASH_PRIMES)
        self.level_offsets = dense_offsets + hashed_offsets  # in level order
        self.register_buffer("_res", torch.tensor(self.resolutions, dtype=torch.float32), False)
        self.register_buffer(
            "_dense_strides",
            torch.tensor(
                [[1, r + 1, (r + 1) ** 2] for r in self.resolutions[:k]], dtype=self.index_dtype
            ).reshape(k, 3),
            False,
        )
        self.register_buffer(
            "_dense_offsets", torch.tensor(dense_offsets, dtype=self.index_dtype), False
        )
        self.register_buffer(
            "_hash_offsets", torch.tensor(hashed_offsets, dtype=self.index_dtype), False
        )
        self.register_buffer("_primes", torch.tensor(primes, dtype=self.index_dtype), False)
        self.init_scale = float(init_scale)
        self.table = nn.Parameter(torch.empty(total_rows, features_per_level))  # (rows, F)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Features ~ U(-init_scale, init_scale) (paper: 1e-4)."""
        with torch.no_grad():
            self.table.uniform_(-self.init_scale, self.init_scale)

    @property
    def out_dim(self) -> int:
        return self.num_levels * self.features_per_level

    def corner_indices(self, base: Tensor, dense: bool) -> Tensor:
        """Global table rows of the 8 corners of cells, for the dense or the hashed levels.

        Args:
            base: (N, L', 3) integer lower-corner vertex coordinates of the L' dense (first
                ``num_dense``) or hashed (the others) levels, of dtype ``index_dtype``.
        Returns:
            (N, L', 2, 2, 2) row indices; corner ``[a, b, c]`` is vertex ``base + (a, b, c)``.
        """
        step = torch.arange(2, device=base.device, dtype=base.dtype)  # (2,)
        c = base[..., None] + step  # (N, L', 3, 2) corner coordinates per axis
        if dense:
            t = c * self._dense_strides[:, :, None]  # row = x + y (R + 1) + z (R + 1)^2
            tx = t[:, :, 0] + self._dense_offsets[:, None]
            return tx[..., :, None, None] + t[:, :, 1, None, :, None] + t[:, :, 2, None, None, :]
        t = (c * self._primes[:, None]) & (self.table_size - 1)  # (N, L', 3, 2), < T
        tx = t[:, :, 0] | self._hash_offsets[:, None]  # offsets are multiples of T
        return tx[..., :, None, None] ^ t[:, :, 1, None, :, None] ^ t[:, :, 2, None, None, :]

    def _interpolate(self, pos: Tensor, res: Tensor, dense: bool) -> Tensor:
        """Trilinear interpolation of one group of levels: (N, L', 3) scaled points -> (N, L' F)."""
        n, levels = pos.shape[0], pos.shape[1]
        base = torch.minimum(pos.detach().floor(), (res - 1.0)[:, None])  # x = 1: last cell
        frac = pos - base  # (N, L', 3) in [0, 1]
        idx = self.corner_indices(base.to(self.index_dtype), dense)  # (N, L', 2, 2, 2)
        w1 = torch.stack([1.0 - frac, frac], dim=-1)  # (N, L', 3, 2)
        w = w1[:, :, 0, :, None, None] * w1[:, :, 1, None, :, None] * w1[:, :, 2, None, None, :]
        # int64 rows: index_add_ (the backward of index_select) is several times slower with
        # int32 indices on CPU.
        feats = self.table.index_select(0, idx.reshape(-1).long())  # (N L' 8, F)
        feats = feats.view(n * levels, 8, self.features_per_level)
        out = torch.bmm(w.reshape(n * levels, 1, 8), feats)  # (N L', 1, F)
        return out.view(n, levels * self.features_per_level)

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 2 or x.shape[-1] != 3:
            raise ValueError(f"expected (N, 3) points in [0, 1], got {tuple(x.shape)}")
        pos = x.clamp(0.0, 1.0)[:, None, :] * self._res[:, None]  # (N, L, 3)
        k = self.num_dense
        parts = []
        if k > 0:
            parts.append(self._interpolate(pos[:, :k], self._res[:k], dense=True))
        if k < self.num_levels:
            parts.append(self._interpolate(pos[:, k:], self._res[k:], dense=False))
        return parts[0] if len(parts) == 1 else torch.cat(parts, dim=-1)  # (N, L F)


__all__ = [
    "HASH_PRIMES",
    "HashEncoding",
    "PositionalEncoding",
    "SphericalHarmonicsEncoding",
    "hash_level_resolutions",
]
