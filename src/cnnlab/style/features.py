"""Feature networks for style transfer: the activations the costs compare.

- ``random``: a random-weight, single-layer multi-scale network (Ustyuzhaninov et al. 2017,
  "What does it take to generate natural textures?"): parallel convolutions of several filter
  sizes with random zero-mean filters, then ReLU; layer ``scale<k>`` is the branch of size k.
- ``vgg19``: a user's torchvision-format VGG-19 weight file (``torchvision.models.vgg19``'s
  state dict), layers by their classic names (``conv1_1``, ``relu4_2``, ...) or ``features.<i>``.
- a path: any cnnlab classifier or face-encoder checkpoint (``models/digits/lenet5/seed0/best.ckpt``,
  ``models/faces/dlib_resnet/best.ckpt``), layers by their ``named_modules`` paths.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import Callable, Mapping, Sequence

import torch
import torch.nn as nn

IMAGENET = {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}


class _Stop(Exception):
    pass


class FeatureNet(nn.Module):
    """A frozen network that returns the activations of named layers for ``(1, 3, H, W)`` [0, 1] images.

    Args:
        model: the network; its forward is run until the deepest requested layer.
        prepare: maps [0, 1] RGB to the network's input (normalisation, grey).
        aliases: extra layer names → ``named_modules`` paths (VGG's ``relu4_2``).
        defaults: ``{"content": layer, "style": [layers]}`` used when the config names none.
        name: how reports call it.
    """

    def __init__(self, model: nn.Module, prepare: Callable[[torch.Tensor], torch.Tensor],
                 aliases: Mapping[str, str] | None = None, defaults: Mapping | None = None, name: str = ""):
        super().__init__()
        self.model = model.eval().requires_grad_(False)
        for m in self.model.modules():  # hooked activations must not be overwritten by a later ReLU
            if getattr(m, "inplace", False):
                m.inplace = False
        self.prepare = prepare
        self.aliases = dict(aliases or {})
        self.defaults = dict(defaults or {})
        self.name = name
        self._modules_by_name = dict(self.model.named_modules())
        self._order = {n: i for i, n in enumerate(self._modules_by_name)}

    def resolve(self, layer: str) -> str:
        """The ``named_modules`` path of ``layer`` (an alias or a path).

        Raises:
            KeyError: the network has no such layer; the message lists the names it has.
        """
        path = self.aliases.get(layer, layer)
        if not path or path not in self._modules_by_name:
            known = list(self.aliases) or [n for n, m in self._modules_by_name.items()
                                           if isinstance(m, nn.Conv2d)]
            raise KeyError(f"layer {layer!r} is not in the {self.name} feature network; it has: "
                           f"{', '.join(known)}")
        return path

    def forward(self, x: torch.Tensor, layers: Sequence[str]) -> dict[str, torch.Tensor]:
        paths = {layer: self.resolve(layer) for layer in layers}
        wanted = set(paths.values())
        last = max(wanted, key=self._order.__getitem__)
        caught: dict[str, torch.Tensor] = {}

        def hook(path):
            def fn(_m, _i, out):
                caught[path] = out[0] if isinstance(out, tuple) else out
                if path == last and wanted <= caught.keys():
                    raise _Stop
            return fn

        hooks = [self._modules_by_name[p].register_forward_hook(hook(p)) for p in wanted]
        try:
            self.model(self.prepare(x))
        except _Stop:
            pass
        finally:
            for h in hooks:
                h.remove()
        return {layer: caught[p] for layer, p in paths.items()}


def _normalizer(mean: Sequence[float], std: Sequence[float], grey: bool = False) -> Callable:
    m = torch.tensor(mean, dtype=torch.float32)[:, None, None]
    s = torch.tensor(std, dtype=torch.float32)[:, None, None]

    def prepare(x: torch.Tensor) -> torch.Tensor:
        if grey:
            x = x.mean(dim=1, keepdim=True)
        return (x - m.to(x)) / s.to(x)

    return prepare


# --------------------------------------------------------------------------- random multi-scale

class MultiScale(nn.Module):
    """One layer of parallel random convolutions (sizes ``sizes``, ``filters`` each), ReLU.

    Ustyuzhaninov et al. used sizes 3-55 with 128 filters each; the defaults here are smaller
    so that a CPU can run it. Filters are Gaussian, each made zero-mean (so a unit responds
    to structure, not to brightness) and scaled to norm ``gain``. Random filters have no natural
    scale, and the scale sets the balance of the costs (J_style grows as gain⁴, J_content as
    gain²): the default 16 makes the assignment's α = 10, β = 40 balance them, as they do with
    VGG-19 (both terms of the same order at the start).
    """

    def __init__(self, sizes: Sequence[int] = (3, 5, 7, 11, 15), filters: int = 32, seed: int = 0,
                 gain: float = 16.0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.sizes = list(sizes)
        for k in self.sizes:
            conv = nn.Conv2d(3, filters, k, padding=k // 2, bias=False)
            w = torch.randn(conv.weight.shape, generator=g)
            w = w - w.mean(dim=(1, 2, 3), keepdim=True)
            conv.weight.data = gain * w / w.flatten(1).norm(dim=1)[:, None, None, None]
            setattr(self, f"conv{k}", conv)
            setattr(self, f"scale{k}", nn.ReLU())

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [getattr(self, f"scale{k}")(getattr(self, f"conv{k}")(x)) for k in self.sizes]


def random_multiscale(sizes: Sequence[int] = (3, 5, 7, 11, 15), filters: int = 32, seed: int = 0,
                      gain: float = 16.0) -> FeatureNet:
    """The random-weight multi-scale network; layers ``scale<k>``. Default: content ``scale7``, style all."""
    net = MultiScale(sizes, filters, seed, gain)
    names = [f"scale{k}" for k in net.sizes]
    content = names[min(2, len(names) - 1)]
    return FeatureNet(net, _normalizer([0.5] * 3, [0.25] * 3), {n: n for n in names},
                      {"content": content, "style": names}, name="random")


# --------------------------------------------------------------------------- VGG-19

def vgg19_aliases() -> dict[str, str]:
    """``conv<b>_<i>`` / ``relu<b>_<i>`` / ``pool<b>`` → ``features.<index>`` of VGG-19 (configuration E)."""
    from ..models.vgg import CFGS

    aliases, block, conv, idx = {}, 1, 1, 0
    for v in CFGS["E"]:
        if v == "M":
            aliases[f"pool{block}"] = f"features.{idx}"
            idx, block, conv = idx + 1, block + 1, 1
            continue
        aliases[f"conv{block}_{conv}"] = f"features.{idx}"
        aliases[f"relu{block}_{conv}"] = f"features.{idx + 1}"
        idx, conv = idx + 2, conv + 1
    return aliases


def vgg19(weights: str | Path | None, pool: str = "max") -> FeatureNet:
    """VGG-19's convolutional trunk with a torchvision-format weight file (nothing is downloaded).

    Args:
        weights: the ``.pth`` of ``torchvision.models.vgg19`` (a state dict; Lightning/``{"model":}``
            wrappers accepted). None: random weights (only for timing).
        pool: ``max`` (as trained) or ``avg`` (Gatys et al. found average pooling gives smoother images).

    Default layers (Gatys et al.): content ``relu4_2``, style ``relu1_1`` … ``relu5_1``.
    """
    from ..models.convert import load_weight_file, remap_torchvision_state_dict
    from ..models.vgg import CFGS, make_features

    trunk = make_features(CFGS["E"], 3, batch_norm=False)  # the registry's vgg19 trunk, without its 120 M FC weights
    if weights is not None:
        state = remap_torchvision_state_dict("vgg19", load_weight_file(weights))
        feats = {k.removeprefix("features."): v for k, v in state.items() if k.startswith("features.")}
        missing = sorted(set(trunk.state_dict()) - set(feats))
        if missing:
            raise ValueError(f"{weights}: not a torchvision VGG-19 state dict (no features.{missing[0]}, ...)")
        try:
            trunk.load_state_dict(feats)
        except RuntimeError as err:
            raise ValueError(f"{weights}: not a torchvision VGG-19 state dict ({str(err).splitlines()[-1].strip()})") from None
    if pool == "avg":
        for i, m in enumerate(trunk):
            if isinstance(m, nn.MaxPool2d):
                trunk[i] = nn.AvgPool2d(2, 2)
    elif pool != "max":
        raise ValueError(f"style.pool must be max or avg, got {pool!r}")
    holder = nn.Sequential(OrderedDict(features=trunk))  # layer paths features.<i>, as in torchvision
    return FeatureNet(holder, _normalizer(IMAGENET["mean"], IMAGENET["std"]), vgg19_aliases(),
                      {"content": "relu4_2", "style": ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"]},
                      name="vgg19")


# --------------------------------------------------------------------------- cnnlab checkpoints

def from_checkpoint(path: str | Path, n_style: int = 5) -> FeatureNet:
    """Any cnnlab classifier or face-encoder checkpoint (loaded by their own loaders).

    Default layers: ``n_style`` convolutions spread over the first three quarters of the depth for
    style (the deepest layers of a network trained on small inputs have almost no spatial extent
    left at style-transfer sizes), and the one at about two thirds of those for content (deep
    enough to be about objects, not pixels, as the course advises).
    """
    import numpy as np

    from ..inside.network import load_network

    net = load_network(path)
    convs = net.conv_layers()
    convs = convs[:max(2, int(np.ceil(len(convs) * 3 / 4)))] if len(convs) > 4 else convs
    style = [convs[i] for i in np.unique(np.round(np.linspace(0, len(convs) - 1, min(n_style, len(convs)))).astype(int))]
    content = convs[int(round((len(convs) - 1) * 2 / 3))]
    return FeatureNet(net.model, _normalizer(net.mean, net.std, grey=net.in_chans == 1), None,
                      {"content": content, "style": style}, name=Path(path).parent.name)


def build(network: str, weights: str | Path | None = None, **kwargs) -> FeatureNet:
    """``random`` | ``vgg19`` (with ``weights``) | a checkpoint path.

    Raises:
        FileNotFoundError: a named file that does not exist.
        ValueError: anything else the network cannot be built from.
    """
    if network == "random":
        return random_multiscale(**{k: v for k, v in kwargs.items() if k in ("sizes", "filters", "seed", "gain")})
    if network == "vgg19":
        if weights is None:
            raise ValueError("style.network=vgg19 needs style.weights=<torchvision vgg19 .pth> (nothing is downloaded)")
        return vgg19(weights, pool=kwargs.get("pool", "max"))
    if Path(network).suffix in (".ckpt", ".pt", ".pth") or Path(network).exists():
        return from_checkpoint(network)
    raise ValueError(f"style.network must be random, vgg19 or a cnnlab checkpoint path, got {network!r}")


def style_weights(layers: Sequence[str], weights: Sequence[float] | None = None) -> dict[str, float]:
    """``{layer: λ}``: the given λs, or equal weights summing to 1 (0.2 on each of five)."""
    if weights is None:
        return {layer: 1.0 / len(layers) for layer in layers}
    if len(weights) != len(layers):
        raise ValueError(f"style.layer_weights has {len(weights)} values for {len(layers)} style layers")
    return dict(zip(layers, map(float, weights)))

