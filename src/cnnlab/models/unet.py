"""U-Net for semantic segmentation: the course's network, the paper's, a no-skip baseline, any zoo encoder.

- ``unet``: the course's U-Net (week 3 assignment, 96×128×3 → 96×128×n_classes). ``conv_block``
  is two 3×3 "same" convolutions with ReLU and He initialisation, optional dropout, then 2×2 max
  pooling that also returns the (pre-pooling) skip connection; ``upsampling_block`` is a 3×3
  transposed convolution with stride 2, concatenation with the skip and two 3×3 convolutions.
  32 filters doubling over five levels, dropout 0.3 in the two deepest, no pooling at the bottom,
  a last 3×3 convolution and a 1×1 convolution to ``n_classes`` logits. With 23 classes (the
  assignment's CARLA data) it has the assignment's 8,640,471 parameters.
- ``unet_paper``: Ronneberger et al. (2015): valid 3×3 convolutions, 2×2 up-convolutions that
  halve the channels, crop-and-copy skips; 572×572 → 388×388 (:func:`paper_output_size`).
- ``encoder_decoder``: the course's network without the skips (the plain encoder-decoder the
  course contrasts U-Net with): the decoder sees only the bottleneck.
- ``unet_backbone``: any registry model's trunk (``backbone=<name>``) as the encoder, tapped at
  each resolution it passes through, with the course's upsampling blocks as the decoder.

Every model maps (N, C, H, W) to (N, n_classes, H', W') logits and has ``num_classes`` and
``reset_classifier(n)`` (a fresh 1×1 head).
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..ops.sizes import conv_output_size, conv_transpose_output_size
from .registry import create_model, register_model

# The course's U-Net, one row per level: filters (× n_filters), dropout. The last row has no pooling.
COURSE_LEVELS = [(1, 0.0), (2, 0.0), (4, 0.0), (8, 0.3), (16, 0.3)]


def _he(conv: nn.Module) -> nn.Module:
    """The course's ``kernel_initializer="he_normal"``: N(0, 2 / fan_in), zero bias."""
    nn.init.kaiming_normal_(conv.weight, mode="fan_in", nonlinearity="relu")
    nn.init.zeros_(conv.bias)
    return conv


def double_conv(in_chans: int, out_chans: int, padding: int) -> nn.Sequential:
    """Two 3×3 convolutions with ReLU (He-initialised); ``padding=1`` is "same", 0 is "valid"."""
    return nn.Sequential(_he(nn.Conv2d(in_chans, out_chans, 3, padding=padding)), nn.ReLU(inplace=True),
                         _he(nn.Conv2d(out_chans, out_chans, 3, padding=padding)), nn.ReLU(inplace=True))


class ConvBlock(nn.Module):
    """The course's ``conv_block``: returns ``(next_layer, skip_connection)``.

    ``skip_connection`` is the output of the two convolutions (after dropout); ``next_layer`` is
    it max-pooled 2×2, or the same tensor when ``max_pooling=False`` (the bottom level).
    """

    def __init__(self, in_chans: int, n_filters: int, dropout: float = 0.0, max_pooling: bool = True,
                 padding: int = 1):
        super().__init__()
        self.convs = double_conv(in_chans, n_filters, padding)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.pool = nn.MaxPool2d(2) if max_pooling else nn.Identity()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        skip = self.dropout(self.convs(x))
        return self.pool(skip), skip


def center_crop(x: torch.Tensor, hw: Sequence[int]) -> torch.Tensor:
    """The centre ``hw`` of a feature map (the paper's "copy and crop")."""
    h, w = x.shape[-2:]
    top, left = (h - hw[0]) // 2, (w - hw[1]) // 2
    return x[..., top:top + hw[0], left:left + hw[1]]


class UpsamplingBlock(nn.Module):
    """The course's ``upsampling_block``: transposed convolution, concatenation with the skip, two convs.

    Args:
        in_chans: channels of the expansive input.
        skip_chans: channels of the contractive input (0: no skip, the encoder-decoder baseline).
        n_filters: output channels of the up-convolution and of both convolutions.
        kernel: 3 (the course: stride 2, "same", so the side doubles) or 2 (the paper).
        padding: 1 ("same" convolutions) or 0 ("valid", with the skip centre-cropped).
    """

    def __init__(self, in_chans: int, skip_chans: int, n_filters: int, kernel: int = 3, padding: int = 1):
        super().__init__()
        same = kernel % 2  # k=3, s=2: p=1 and output_padding=1 give exactly 2n, like Keras' "same"
        self.up = nn.ConvTranspose2d(in_chans, n_filters, kernel, stride=2, padding=same, output_padding=same)
        self.convs = double_conv(n_filters + skip_chans, n_filters, padding)
        self.use_skip = skip_chans > 0

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        x = self.up(x)
        if self.use_skip:
            if x.shape[-2:] != skip.shape[-2:]:
                if skip.shape[-2] >= x.shape[-2] and skip.shape[-1] >= x.shape[-1]:
                    skip = center_crop(skip, x.shape[-2:])
                else:  # an encoder whose side was odd: bring the upsampled map to the skip's size
                    x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = torch.cat([x, skip], dim=1)
        return self.convs(x)


class UNet(nn.Module):
    """A U-Net from a table of levels (filters multiplier, dropout), as the course's and the paper's.

    Args:
        num_classes: logits per pixel.
        in_chans: input channels.
        n_filters: filters of the first level; level ``i`` has ``n_filters × levels[i][0]``.
        levels: ``(multiplier, dropout)`` per level, shallowest first; the last is the bottom.
        padding: 1 for "same" convolutions (output size = input size), 0 for the paper's "valid" ones.
        up_kernel: 3 (the course's 3×3 transposed convolution) or 2 (the paper's 2×2 up-convolution).
        skips: concatenate the encoder's maps in the decoder (False: the plain encoder-decoder).
        final_conv: the course's extra 3×3 convolution before the 1×1 classifier.
    """

    def __init__(self, num_classes: int = 23, in_chans: int = 3, n_filters: int = 32,
                 levels: Sequence[Sequence[float]] = COURSE_LEVELS, padding: int = 1, up_kernel: int = 3,
                 skips: bool = True, final_conv: bool = True):
        super().__init__()
        widths = [int(n_filters * m) for m, _ in levels]
        self.num_classes = num_classes
        self.padding = padding
        self.down = nn.ModuleList()
        chans = in_chans
        for i, (width, (_, p)) in enumerate(zip(widths, levels)):
            self.down.append(ConvBlock(chans, width, dropout=p, max_pooling=i < len(levels) - 1, padding=padding))
            chans = width
        self.up = nn.ModuleList()
        for width in reversed(widths[:-1]):
            self.up.append(UpsamplingBlock(chans, width if skips else 0, width, kernel=up_kernel, padding=padding))
            chans = width
        self.final = (nn.Sequential(_he(nn.Conv2d(chans, n_filters, 3, padding=padding)), nn.ReLU(inplace=True))
                      if final_conv else nn.Identity())
        self.num_features = n_filters if final_conv else chans
        self.head = nn.Conv2d(self.num_features, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for block in self.down:
            x, skip = block(x)
            skips.append(skip)
        for block, skip in zip(self.up, reversed(skips[:-1])):
            x = block(x, skip)
        return self.head(self.final(x))

    def reset_classifier(self, num_classes: int) -> None:
        """A fresh 1×1 classifier for ``num_classes`` classes (the encoder and decoder are kept)."""
        self.num_classes = num_classes
        self.head = nn.Conv2d(self.num_features, num_classes, 1)


# Ronneberger et al. (2015), Fig. 1: 64 filters doubling over five levels, drop-out at the end of
# the contracting path, valid convolutions, 2×2 up-convolutions, no extra 3×3 before the 1×1.
PAPER_LEVELS = [(1, 0.0), (2, 0.0), (4, 0.0), (8, 0.5), (16, 0.5)]


def paper_output_size(n: int, depth: int = 5) -> int:
    """Output side of the paper's U-Net for an ``n``-pixel side, through the size formulas.

    Each level loses 4 pixels to two valid 3×3 convolutions; pooling halves, up-convolution doubles.

    Raises:
        ValueError: if a map to be pooled has an odd side (the 2×2 pooling would drop a row and
            the skip would no longer line up), or the input is too small.
    """
    for level in range(depth):
        n = conv_output_size(conv_output_size(n, 3), 3)
        if level < depth - 1:
            if n % 2:
                raise ValueError(f"U-Net (paper): a {n}-pixel map at level {level + 1} cannot be max-pooled "
                                 f"2×2 without losing a row; choose an input side like 572 (n ≡ 12 mod 16)")
            n = conv_output_size(n, 2, s=2)
    for _ in range(depth - 1):
        n = conv_output_size(conv_output_size(conv_transpose_output_size(n, 2, s=2), 3), 3)
    return n


class BackboneUNet(nn.Module):
    """U-Net whose encoder is a registry model's ``forward_features``, tapped at every resolution.

    A trial pass finds, for each downsampling factor the trunk reaches, the last module (called
    once) whose output has that resolution; those outputs are the skips. The decoder is the
    course's upsampling blocks from the deepest tap up to the shallowest, then one more
    upsampling block per missing factor of 2 to the input resolution.

    Args:
        backbone: registry name of the encoder (any 2-D image model, e.g. ``resnet18``).
        num_classes: logits per pixel.
        in_chans: input channels.
        decoder_filters: filters of the decoder block at the shallowest tap; doubling deeper.
        probe_size: (H, W) of the trial pass.
        **backbone_kwargs: passed to the encoder's builder (e.g. ``small_input=true``).
    """

    def __init__(self, backbone: str = "resnet18", num_classes: int = 23, in_chans: int = 3,
                 decoder_filters: int = 16, probe_size: Sequence[int] = (64, 64), **backbone_kwargs):
        super().__init__()
        self.num_classes = num_classes
        self.encoder = create_model(backbone, num_classes=0, in_chans=in_chans, **backbone_kwargs)
        self.taps, chans, factors = _find_taps(self.encoder, in_chans, tuple(probe_size))
        self._outputs: dict[str, torch.Tensor] = {}
        modules = dict(self.encoder.named_modules())
        for name in self.taps:
            modules[name].register_forward_hook(self._save(name))
        widths = [decoder_filters * 2 ** i for i in range(len(self.taps))]
        self.up = nn.ModuleList()
        x_chans = chans[-1]
        for skip_chans, width in zip(reversed(chans[:-1]), reversed(widths[:-1])):
            self.up.append(UpsamplingBlock(x_chans, skip_chans, width))
            x_chans = width
        self.to_input = nn.ModuleList()
        for _ in range(max(factors[0].bit_length() - 1, 0)):  # log2 of the shallowest tap's factor
            self.to_input.append(UpsamplingBlock(x_chans, 0, decoder_filters))
            x_chans = decoder_filters
        self.num_features = x_chans
        self.head = nn.Conv2d(x_chans, num_classes, 1)

    def _save(self, name: str):
        def hook(module: nn.Module, args, output: torch.Tensor) -> None:
            self._outputs[name] = output
        return hook

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        self._outputs.clear()
        self.encoder.forward_features(x)
        feats = [self._outputs[name] for name in self.taps]
        self._outputs.clear()
        y = feats[-1]
        for block, skip in zip(self.up, reversed(feats[:-1])):
            y = block(y, skip)
        for block in self.to_input:
            y = block(y)
        if y.shape[-2:] != size:
            y = F.interpolate(y, size=size, mode="bilinear", align_corners=False)
        return self.head(y)

    def reset_classifier(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.head = nn.Conv2d(self.num_features, num_classes, 1)


@torch.no_grad()
def _find_taps(encoder: nn.Module, in_chans: int, probe: tuple[int, int]) -> tuple[list[str], list[int], list[int]]:
    """Module names, channels and downsampling factors of the encoder's last output at each resolution."""
    calls: list[tuple[str, torch.Size]] = []
    counts: dict[str, int] = {}
    hooks = []
    for name, module in encoder.named_modules():
        if name and not name.startswith("head"):
            def hook(m, a, out, name=name):
                counts[name] = counts.get(name, 0) + 1
                if isinstance(out, torch.Tensor) and out.ndim == 4:
                    calls.append((name, out.shape))
            hooks.append(module.register_forward_hook(hook))
    was_training = encoder.training
    encoder.eval()
    try:
        out = encoder.forward_features(torch.zeros(1, in_chans, *probe))
    finally:
        for h in hooks:
            h.remove()
        encoder.train(was_training)
    last: dict[int, tuple[str, int]] = {}
    for name, shape in calls:
        if counts[name] == 1:  # a module called twice (a shared ReLU) is no well-defined tap
            last[probe[0] // shape[-2]] = (name, shape[1])
    if not isinstance(out, torch.Tensor) or out.ndim != 4:
        raise ValueError(f"{type(encoder).__name__}: forward_features gives no 2-D feature map: it cannot "
                         f"be a U-Net encoder")
    # Side branches (squeeze-and-excitation's 1×1 maps) look coarser than the trunk's output: not taps.
    factors = [f for f in sorted(last) if f <= probe[0] // out.shape[-2]]
    if not factors:
        raise ValueError(f"{type(encoder).__name__}: no 2-D feature map found in forward_features")
    return [last[f][0] for f in factors], [last[f][1] for f in factors], factors


def _register(name: str, **cfg):
    return register_model(name, task="segmentation", **cfg)


@_register("unet", input_size=(3, 96, 128))
def unet(num_classes: int = 23, in_chans: int = 3, n_filters: int = 32, dropout: float = 0.3) -> UNet:
    """The course's U-Net (``dropout`` in the two deepest levels)."""
    levels = [(m, dropout if p else 0.0) for m, p in COURSE_LEVELS]
    return UNet(num_classes, in_chans, n_filters, levels)


@_register("unet_paper", input_size=(1, 572, 572))
def unet_paper(num_classes: int = 2, in_chans: int = 1, n_filters: int = 64, dropout: float = 0.5) -> UNet:
    """Ronneberger et al.'s U-Net: valid convolutions, 2×2 up-convolutions, cropped skips."""
    levels = [(m, dropout if p else 0.0) for m, p in PAPER_LEVELS]
    return UNet(num_classes, in_chans, n_filters, levels, padding=0, up_kernel=2, final_conv=False)


@_register("encoder_decoder", input_size=(3, 96, 128))
def encoder_decoder(num_classes: int = 23, in_chans: int = 3, n_filters: int = 32, dropout: float = 0.3) -> UNet:
    """The course's U-Net without skip connections: the baseline that shows what the skips buy."""
    levels = [(m, dropout if p else 0.0) for m, p in COURSE_LEVELS]
    return UNet(num_classes, in_chans, n_filters, levels, skips=False)


@_register("unet_backbone", input_size=(3, 96, 128))
def unet_backbone(num_classes: int = 23, in_chans: int = 3, backbone: str = "resnet18", decoder_filters: int = 16,
                  **backbone_kwargs) -> BackboneUNet:
    """U-Net with a zoo model as the encoder (``backbone=resnet18``, ``mobilenet_v2``, ...)."""
    return BackboneUNet(backbone, num_classes, in_chans, decoder_filters, **backbone_kwargs)


@_register("smp_unet", input_size=(3, 96, 128))
def smp_unet(num_classes: int = 23, in_chans: int = 3, encoder_name: str = "resnet34") -> nn.Module:
    """segmentation_models_pytorch's ``Unet(encoder_weights=None)``: the outside reference (a dev extra).

    Input sides must be multiples of 32.

    Raises:
        ImportError: segmentation_models_pytorch is not installed (``pip install -e .[dev]``).
    """
    try:
        import segmentation_models_pytorch as smp
    except ImportError as err:
        raise ImportError("model=smp_unet needs segmentation_models_pytorch (a dev extra: pip install -e .[dev])"
                          ) from err
    model = smp.Unet(encoder_name=encoder_name, encoder_weights=None, in_channels=in_chans, classes=num_classes)
    model.num_classes = num_classes
    return model
