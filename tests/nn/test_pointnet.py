"""PointNet encoder: shapes, set-function invariances, VAE heads, input checks."""

from __future__ import annotations

import pytest
import torch

from zoo.nn.pointnet import PointNetEncoder


def test_shapes_plain_and_vae():
    x = torch.randn(4, 100, 3)
    enc = PointNetEncoder(3, (16, 32), out_dim=8, head=(16,))
    assert enc(x).shape == (4, 8)
    vae = PointNetEncoder(3, (16, 32), out_dim=8, head=(16,), vae=True)
    mean, logvar = vae(x)
    assert mean.shape == logvar.shape == (4, 8)
    assert not torch.allclose(mean, logvar)  # two separate heads
    six = PointNetEncoder(6, (16,), out_dim=5, head=())
    assert six(torch.randn(2, 10, 6)).shape == (2, 5)


def test_permutation_and_duplication_invariance():
    """A max-pooled set function: reordering or repeating points changes nothing."""
    torch.manual_seed(0)
    enc = PointNetEncoder(3, (16, 32), out_dim=8, head=(16,)).eval()
    x = torch.randn(2, 50, 3)
    out = enc(x)
    perm = torch.randperm(50)
    torch.testing.assert_close(enc(x[:, perm]), out)
    torch.testing.assert_close(enc(torch.cat([x, x[:, :10]], dim=1)), out)
    # but it is not constant: another cloud gives another code
    assert (enc(x + 0.5) - out).abs().max() > 1e-3


def test_matches_pointwise_linear_reference():
    """Without batch norm, the per-point layers are shared linear maps + ReLU, then max."""
    torch.manual_seed(1)
    enc = PointNetEncoder(3, (8, 4), out_dim=2, head=(), batch_norm=False)
    x = torch.randn(1, 7, 3)
    c1, c2, lin = enc.point_mlp[0], enc.point_mlp[3], enc.head[0]
    h = torch.relu(x[0] @ c1.weight[:, :, 0].T + c1.bias)  # (7, 8)
    h = h @ c2.weight[:, :, 0].T + c2.bias  # no ReLU before the pool (PointFlow)
    ref = h.max(0).values @ lin.weight.T + lin.bias
    torch.testing.assert_close(enc(x)[0], ref)


def test_batch_of_one_without_batch_norm_trains():
    enc = PointNetEncoder(3, (8,), out_dim=4, head=(8,), batch_norm=False).train()
    enc(torch.randn(1, 20, 3)).sum().backward()


def test_bad_input_is_named():
    enc = PointNetEncoder(3, (8,), out_dim=4)
    with pytest.raises(ValueError, match=r"points must be \(B, N, 3\), got \(20, 3\)"):
        enc(torch.randn(20, 3))
