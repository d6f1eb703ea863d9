"""A linear layer with weight normalisation that can be pickled (DDP spawn, deepcopy).

Salimans & Kingma, "Weight Normalization", NeurIPS 2016: ``w = g * v / ||v||`` with the norm
taken per output row. ``torch.nn.utils.parametrizations.weight_norm`` computes the same thing,
but a parametrised module refuses to be pickled ("Serialization of parametrized modules is only
supported through state_dict()"), which breaks Lightning's ``ddp_spawn`` (the model is pickled
into each spawned process). This layer holds ``g`` and ``v`` as plain parameters and calls the
same kernel (``torch._weight_norm``), so outputs equal the parametrised layer's bit for bit.

State-dict keys written by the parametrised layer (``parametrizations.weight.original0`` = g,
``parametrizations.weight.original1`` = v) load into this one, so older checkpoints and the
shipped weights keep working.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

_LEGACY = {
    "parametrizations.weight.original0": "weight_g",
    "parametrizations.weight.original1": "weight_v",
}


class WeightNormLinear(nn.Module):
    """``y = x (g * v / ||v||_row)^T + b``; initialised like ``nn.Linear`` with ``g = ||v||``.

    Shapes: (..., in_features) -> (..., out_features).
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True) -> None:
        super().__init__()
        self.in_features = int(in_features)
        self.out_features = int(out_features)
        # Parameters in the parametrised layer's order (bias, g, v), so optimiser states of
        # older checkpoints (kept by position) line up; draws in nn.Linear's order (w, then b).
        v = torch.empty(self.out_features, self.in_features)
        nn.init.kaiming_uniform_(v, a=math.sqrt(5))  # nn.Linear's initialisation
        if bias:
            bound = 1 / math.sqrt(self.in_features) if self.in_features > 0 else 0.0
            self.bias = nn.Parameter(torch.empty(self.out_features).uniform_(-bound, bound))
        else:
            self.register_parameter("bias", None)
        self.weight_g = nn.Parameter(v.norm(dim=1, keepdim=True))  # (out, 1) magnitude
        self.weight_v = nn.Parameter(v)  # (out, in) direction
        self._register_load_state_dict_pre_hook(_rename_legacy_keys)

    @property
    def weight(self) -> Tensor:
        """(out, in) effective weight ``g * v / ||v||``."""
        return torch._weight_norm(self.weight_v, self.weight_g, 0)

    def forward(self, x: Tensor) -> Tensor:
        return nn.functional.linear(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}"


def _rename_legacy_keys(state_dict: dict[str, Any], prefix: str, *args: Any) -> None:
    """Map the parametrised layer's keys to ``weight_g`` / ``weight_v`` (in place)."""
    for old, new in _LEGACY.items():
        if prefix + old in state_dict and prefix + new not in state_dict:
            state_dict[prefix + new] = state_dict.pop(prefix + old)


__all__ = ["WeightNormLinear"]
