"""WeightNormLinear: the same function and keys as torch's parametrised weight norm, picklable."""

from __future__ import annotations

import pickle

import torch
from torch.nn.utils.parametrizations import weight_norm

from zoo.nn.weight_norm import WeightNormLinear


def test_matches_the_parametrised_layer_and_loads_its_state_dict():
    torch.manual_seed(0)
    ref = weight_norm(torch.nn.Linear(5, 7))
    torch.manual_seed(0)
    ours = WeightNormLinear(5, 7)  # same draws, same order: same initial weights
    for a, b in zip(ref.parameters(), ours.parameters(), strict=True):
        assert torch.equal(a, b)
    with torch.no_grad():
        ref.parametrizations.weight.original0.mul_(1.7)  # g no longer equals ||v||
    loaded = WeightNormLinear(5, 7)
    loaded.load_state_dict(ref.state_dict())  # legacy keys parametrizations.weight.original*
    x = torch.randn(3, 5)
    assert torch.equal(loaded(x), ref(x))
    # By hand: w = g v / ||v|| row-wise.
    v, g = loaded.weight_v, loaded.weight_g
    assert torch.allclose(loaded.weight, g * v / v.norm(dim=1, keepdim=True), atol=1e-6)


def test_pickles_with_its_gradients_flowing():
    layer = WeightNormLinear(4, 3)
    back = pickle.loads(pickle.dumps(layer))  # what ddp_spawn does to the model
    x = torch.randn(2, 4)
    assert torch.equal(back(x), layer(x))
    back(x).sum().backward()
    assert back.weight_g.grad is not None and back.weight_v.grad is not None
