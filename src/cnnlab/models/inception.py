"""GoogLeNet, i.e. Inception v1 (Szegedy et al., 2014, "Going Deeper with Convolutions").

An *Inception module* runs four branches on the same input and concatenates them along channels:
1×1 conv | 1×1 "reduce" → 3×3 conv | 1×1 reduce → 5×5 conv | 3×3/1 max-pool → 1×1 "pool proj".
The 1×1 bottlenecks pay for the wide filters: the course's 28×28×192 → 28×28×32 5×5 conv costs
120 M multiplications directly, 2.4 M + 10 M = 12.4 M through a 16-channel 1×1 bottleneck.
The network (``GOOGLENET_TABLE``, the paper's Table 1) stacks nine modules; two auxiliary
classifiers on 4a and 4d add their losses in training (weighted 0.3 in the paper), which pushes
useful gradient into the middle layers and regularises.

**Outputs.** ``forward`` returns logits ``[N, num_classes]``, except in train mode with auxiliary
classifiers, where it returns ``GoogLeNetOutputs(logits, aux_logits2, aux_logits1)`` — the same
namedtuple (and field order) as torchvision, so code written for one works with the other.

**Deviations from the paper, all as in torchvision** (so torchvision weights load and agree):

- the "5×5" branch uses a 3×3 conv: a known torchvision bug (pytorch/vision#906) kept for weight
  compatibility. ``paper_5x5=True`` builds the paper's 5×5 (torchvision weights then do not fit);
- BatchNorm (eps 1e-3) after every conv and no local response normalisation;
- ``maxpool4`` is 2×2/2 (paper 3×3/2; both give 7×7 at 224×224), pools use ceil mode;
- the auxiliary heads pool adaptively to 4×4 (paper: 5×5/3 average pooling, which gives 4×4 from
  14×14); dropout before the classifier is 0.2 (paper 0.4).

``transform_input=True`` re-normalises ImageNet-normalised inputs to the [-1, 1] scaling that
torchvision's pretrained GoogLeNet weights (ported from TF) expect; torchvision turns it on only
when it loads those weights, so the default here, as in torchvision with ``weights=None``, is off.

torchvision key mapping (``googlenet``; the registry's ``tv_kwargs`` state torchvision's defaults
``aux_logits=True, init_weights=True``): module names are torchvision's (``conv1.conv``,
``inception3a.branch2.1.bn``, ``aux1.fc2`` …); ``tv_remap`` renames only ``fc.*`` → ``head.*``.
Torchvision's pretrained file has no ``aux1``/``aux2`` keys: load it into ``aux_logits=False``.
"""

from __future__ import annotations

from collections import namedtuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from .base import Backbone
from .registry import register_model

GoogLeNetOutputs = namedtuple("GoogLeNetOutputs", ["logits", "aux_logits2", "aux_logits1"])

# Szegedy et al. 2014, Table 1. Rows: (name, kind, args); output size at 224×224 in the comment.
#   conv:      (out channels, kernel, stride)
#   pool:      (kernel, stride)            max pooling
#   inception: (#1×1, #3×3 reduce, #3×3, #5×5 reduce, #5×5, pool proj)
GOOGLENET_TABLE: list[tuple[str, str, tuple[int, ...]]] = [
    ("conv1", "conv", (64, 7, 2)),                                 # 112×112×64
    ("maxpool1", "pool", (3, 2)),                                  # 56×56×64
    ("conv2", "conv", (64, 1, 1)),                                 # 56×56×64   (the 3×3's reduce)
    ("conv3", "conv", (192, 3, 1)),                                # 56×56×192
    ("maxpool2", "pool", (3, 2)),                                  # 28×28×192
    ("inception3a", "inception", (64, 96, 128, 16, 32, 32)),       # 28×28×256
    ("inception3b", "inception", (128, 128, 192, 32, 96, 64)),     # 28×28×480
    ("maxpool3", "pool", (3, 2)),                                  # 14×14×480
    ("inception4a", "inception", (192, 96, 208, 16, 48, 64)),      # 14×14×512  → aux1
    ("inception4b", "inception", (160, 112, 224, 24, 64, 64)),     # 14×14×512
    ("inception4c", "inception", (128, 128, 256, 24, 64, 64)),     # 14×14×512
    ("inception4d", "inception", (112, 144, 288, 32, 64, 64)),     # 14×14×528  → aux2
    ("inception4e", "inception", (256, 160, 320, 32, 128, 128)),   # 14×14×832
    ("maxpool4", "pool", (2, 2)),                                  # 7×7×832    (paper: 3×3/2)
    ("inception5a", "inception", (256, 160, 320, 32, 128, 128)),   # 7×7×832
    ("inception5b", "inception", (384, 192, 384, 48, 128, 128)),   # 7×7×1024
]
AUX_TAPS = {"inception4a": "aux1", "inception4d": "aux2"}  # auxiliary head fed by each module
# small_input: 32×32 images keep their resolution through the stem (same parameters).
_SMALL_INPUT_ROWS = {"conv1": ("conv", (64, 7, 1)), "maxpool1": ("identity", ())}


class BasicConv2d(nn.Module):
    """Conv (no bias, "same" padding) → BatchNorm(eps 1e-3) → ReLU."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int, stride: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, kernel_size, stride, kernel_size // 2, bias=False)
        self.bn = nn.BatchNorm2d(out_ch, eps=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)), inplace=True)


class Inception(nn.Module):
    """The four-branch module; output channels = ch1x1 + ch3x3 + ch5x5 + pool_proj.

    Args:
        kernel_5x5: kernel of the "5×5" branch (3 as in torchvision, 5 as in the paper).
    """

    def __init__(self, in_ch: int, ch1x1: int, ch3x3red: int, ch3x3: int, ch5x5red: int, ch5x5: int,
                 pool_proj: int, kernel_5x5: int = 3):
        super().__init__()
        self.branch1 = BasicConv2d(in_ch, ch1x1, 1)
        self.branch2 = nn.Sequential(BasicConv2d(in_ch, ch3x3red, 1), BasicConv2d(ch3x3red, ch3x3, 3))
        self.branch3 = nn.Sequential(BasicConv2d(in_ch, ch5x5red, 1), BasicConv2d(ch5x5red, ch5x5, kernel_5x5))
        self.branch4 = nn.Sequential(nn.MaxPool2d(3, stride=1, padding=1, ceil_mode=True),
                                     BasicConv2d(in_ch, pool_proj, 1))
        self.out_channels = ch1x1 + ch3x3 + ch5x5 + pool_proj

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], 1)


class InceptionAux(nn.Module):
    """Auxiliary classifier: avg-pool to 4×4 → 1×1 conv 128 → FC 1024 + ReLU → dropout → FC."""

    def __init__(self, in_ch: int, num_classes: int, dropout: float = 0.7):
        super().__init__()
        self.conv = BasicConv2d(in_ch, 128, 1)
        self.fc1 = nn.Linear(128 * 4 * 4, 1024)
        self.fc2 = nn.Linear(1024, num_classes)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.flatten(self.conv(F.adaptive_avg_pool2d(x, (4, 4))), 1)
        return self.fc2(self.dropout(F.relu(self.fc1(x), inplace=True)))


def _build_layer(kind: str, args: tuple[int, ...], in_ch: int, kernel_5x5: int) -> tuple[nn.Module, int]:
    """One ``GOOGLENET_TABLE`` row as a module, with its output channel count."""
    if kind == "conv":
        return BasicConv2d(in_ch, args[0], args[1], args[2]), args[0]
    if kind == "pool":
        return nn.MaxPool2d(args[0], args[1], ceil_mode=True), in_ch
    if kind == "identity":
        return nn.Identity(), in_ch
    block = Inception(in_ch, *args, kernel_5x5=kernel_5x5)
    return block, block.out_channels


class GoogLeNet(Backbone):
    """GoogLeNet with optional auxiliary classifiers.

    Args:
        num_classes: classifier outputs; 0 gives pooled 1024-d features and no auxiliary heads.
        in_chans: input channels.
        aux_logits: build the two auxiliary classifiers (used only in train mode).
        transform_input: map ImageNet-normalised RGB to [-1, 1] first (needs ``in_chans=3``).
        paper_5x5: use the paper's 5×5 conv in the "5×5" branch instead of torchvision's 3×3.
        small_input: stride-1 ``conv1`` and no ``maxpool1``, so 32×32 inputs reach the Inception
            modules at 16×16 instead of 4×4 (same parameters; torchvision weights still load).
        dropout: dropout before the classifier (applied to logits only, not to ``pre_logits``).
        dropout_aux: dropout inside the auxiliary classifiers.
    """

    def __init__(self, num_classes: int = 1000, in_chans: int = 3, aux_logits: bool = True,
                 transform_input: bool = False, paper_5x5: bool = False, small_input: bool = False,
                 dropout: float = 0.2, dropout_aux: float = 0.7):
        super().__init__()
        if transform_input and in_chans != 3:
            raise ValueError("transform_input re-normalises RGB and needs in_chans=3")
        self.transform_input = transform_input
        self.dropout_aux = dropout_aux
        ch, widths = in_chans, {}
        for name, kind, args in GOOGLENET_TABLE:
            kind, args = _SMALL_INPUT_ROWS.get(name, (kind, args)) if small_input else (kind, args)
            layer, ch = _build_layer(kind, args, ch, 5 if paper_5x5 else 3)
            widths[name] = ch
            self.add_module(name, layer)
        self._aux_in = {aux: widths[tap] for tap, aux in AUX_TAPS.items()}
        self.num_features = ch
        self.head_drop = nn.Dropout(dropout)
        self._set_heads(num_classes, aux_logits)
        self._init_weights()

    def _set_heads(self, num_classes: int, aux_logits: bool) -> None:
        self.num_classes = num_classes
        self.aux_logits = aux_logits and num_classes > 0
        for aux, in_ch in self._aux_in.items():
            setattr(self, aux, InceptionAux(in_ch, num_classes, self.dropout_aux) if self.aux_logits else None)
        self.head = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()

    def _init_weights(self) -> None:
        # torchvision's scheme: truncated normal (std 0.01, cut at ±2) for convs and FCs.
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.trunc_normal_(m.weight, mean=0.0, std=0.01, a=-2, b=2)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def _transform(self, x: torch.Tensor) -> torch.Tensor:
        if not self.transform_input:
            return x
        # x_norm = (x01 - mean) / std  →  (x01 - 0.5) / 0.5, channel by channel.
        return torch.cat([
            torch.unsqueeze(x[:, 0], 1) * (0.229 / 0.5) + (0.485 - 0.5) / 0.5,
            torch.unsqueeze(x[:, 1], 1) * (0.224 / 0.5) + (0.456 - 0.5) / 0.5,
            torch.unsqueeze(x[:, 2], 1) * (0.225 / 0.5) + (0.406 - 0.5) / 0.5,
        ], 1)

    def _trunk(self, x: torch.Tensor, with_aux: bool) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        x, aux = self._transform(x), {}
        for name, _, _ in GOOGLENET_TABLE:
            x = getattr(self, name)(x)
            if with_aux and name in AUX_TAPS:
                aux[AUX_TAPS[name]] = getattr(self, AUX_TAPS[name])(x)
        return x, aux

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self._trunk(x, with_aux=False)[0]

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.forward_pre_logits(x)
        return x if pre_logits else self.head(self.head_drop(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor | GoogLeNetOutputs:
        with_aux = self.training and self.aux_logits
        x, aux = self._trunk(x, with_aux)
        logits = self.forward_head(x)
        return GoogLeNetOutputs(logits, aux["aux2"], aux["aux1"]) if with_aux else logits

    def reset_classifier(self, num_classes: int) -> None:
        """New main and auxiliary classifiers for ``num_classes``; 0 removes all of them for good."""
        self._set_heads(num_classes, self.aux_logits)


def tv_remap_googlenet(key: str) -> str:
    """torchvision → cnnlab key: ``fc.*`` → ``head.*``, everything else unchanged."""
    return "head." + key[3:] if key.startswith("fc.") else key


# tv_kwargs: torchvision's own defaults, stated (its init_weights=None warns, then means True).
@register_model("googlenet", input_size=(3, 224, 224), torchvision="googlenet", tv_remap=tv_remap_googlenet,
                tv_kwargs={"aux_logits": True, "init_weights": True})
def googlenet(num_classes: int = 1000, in_chans: int = 3, **kwargs) -> GoogLeNet:
    return GoogLeNet(num_classes=num_classes, in_chans=in_chans, **kwargs)
