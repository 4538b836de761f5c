"""Weight initialisation schemes a training run can ask for by name (``init=`` in the config).

``default`` keeps each family's own initialisation (torchvision's choices, see the model
files). ``he`` is the course's He initialisation for ReLU networks: every weight drawn from
N(0, 2 / n[l-1]), n[l-1] being the fan-in (input channels / groups × kernel area for a CONV,
inputs for an FC layer), so activations keep their variance from layer to layer.
"""

from __future__ import annotations

import torch.nn as nn

_WEIGHTED = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)
_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm, nn.GroupNorm, nn.LayerNorm)


def he_init(module: nn.Module) -> nn.Module:
    """Re-initialise ``module`` in place: He-normal (fan-in, ReLU gain) CONV/FC weights, zero biases,
    normalisation layers as the identity (scale 1, shift 0). Returns ``module``."""
    for m in module.modules():
        if isinstance(m, _WEIGHTED):
            nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, _NORMS) and m.weight is not None:
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    return module


def apply_init(module: nn.Module, scheme: str) -> nn.Module:
    """Apply the named scheme (``"default"`` leaves the family's own initialisation).

    Raises:
        ValueError: unknown scheme.
    """
    if scheme == "he":
        return he_init(module)
    if scheme != "default":
        raise ValueError(f"init must be 'default' or 'he', got {scheme!r}")
    return module
