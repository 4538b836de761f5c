"""Small 1-D and 3-D CNNs: the course's generalisation of convolution beyond images.

1-D (signals such as an ECG, ``in_chans`` leads × length L): a 14-sample input convolved with
16 filters of width 5 gives 10×16; 32 filters of width 5×16 then give 6×32.
3-D (volumes such as CT scans, C×D×H×W): 14×14×14×1 convolved with 16 filters 5×5×5×1 gives
10×10×10×16; 32 filters 5×5×5×16 then give 6×6×6×32.
The first two rows of ``LAYERS`` are exactly that lecture example ("valid" convolutions); two
padded rows and max-pools follow, then global average pooling and a linear head.

These are not image models: their registry ``input_size`` is (C, L) for ``conv1d_net`` and
(C, D, H, W) for ``conv3d_net``, and any length ≥ 12 (1-D) or edge ≥ 12 (3-D) works.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from .base import Backbone
from .registry import register_model

# (filters, kernel, padding, max-pool /2 after). Rows 1-2: the lecture's 14 → 10 → 6 example.
LAYERS: list[tuple[int, int, int, bool]] = [
    (16, 5, 0, False),
    (32, 5, 0, True),
    (64, 3, 1, True),
    (128, 3, 1, False),
]

_OPS = {
    1: (nn.Conv1d, nn.BatchNorm1d, nn.MaxPool1d),
    3: (nn.Conv3d, nn.BatchNorm3d, nn.MaxPool3d),
}


class ConvNdNet(Backbone):
    """A ``LAYERS`` CNN over 1-D signals or 3-D volumes.

    ``features`` holds one CONV[-BN]-ReLU block per row, with each max-pool as its own entry
    (so ``features[:2]`` is the lecture's two-layer example).

    Args:
        dims: 1 (signals, input N×C×L) or 3 (volumes, input N×C×D×H×W).
        num_classes: classifier width (0 gives the pooled 128-d features).
        in_chans: input channels (e.g. ECG leads, CT/MRI modalities).
        batch_norm: BN after every CONV (the CONV then has no bias).
    """

    def __init__(self, dims: int, num_classes: int = 2, in_chans: int = 1, batch_norm: bool = True):
        super().__init__()
        if dims not in _OPS:
            raise ValueError(f"dims must be 1 or 3, got {dims}")
        Conv, Norm, Pool = _OPS[dims]
        self.num_classes = num_classes
        blocks: list[nn.Module] = []
        for width, kernel, padding, pool in LAYERS:
            block: list[nn.Module] = [Conv(in_chans, width, kernel, padding=padding, bias=not batch_norm)]
            if batch_norm:
                block.append(Norm(width))
            blocks.append(nn.Sequential(*block, nn.ReLU(inplace=True)))
            if pool:
                blocks.append(Pool(2))
            in_chans = width
        self.features = nn.Sequential(*blocks)
        self.num_features = in_chans
        self.head = nn.Linear(in_chans, num_classes) if num_classes > 0 else nn.Identity()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


@register_model("conv1d_net", input_size=(1, 256))
def conv1d_net(num_classes: int = 2, in_chans: int = 1, **kwargs) -> ConvNdNet:
    """1-D CNN for signals of shape (in_chans, L); not an image model."""
    return ConvNdNet(1, num_classes=num_classes, in_chans=in_chans, **kwargs)


@register_model("conv3d_net", input_size=(1, 16, 32, 32))
def conv3d_net(num_classes: int = 2, in_chans: int = 1, **kwargs) -> ConvNdNet:
    """3-D CNN for volumes of shape (in_chans, D, H, W); not an image model."""
    return ConvNdNet(3, num_classes=num_classes, in_chans=in_chans, **kwargs)
