"""dlib's pretrained 128-d face ResNet as a PyTorch network, with weights read straight from dlib's file.

dlib ships a face-recognition ResNet (``dlib_face_recognition_resnet_model_v1.dat``, packaged in
``face_recognition_models``) trained with a metric loss so that two chips of the same person lie
less than 0.6 apart (Euclidean, raw descriptors). This module rebuilds that network in PyTorch and
imports the weights **without dlib**: the file is dlib's own binary serialisation, parsed in
pure Python / numpy (:mod:`.dlib_dat`). With the same 150×150 aligned chip, :class:`DlibFaceResNet` reproduces
``dlib.face_recognition_model_v1.compute_face_descriptor`` to float32 rounding (see
``tests/test_dlib_import.py``).

Architecture (``anet_type`` of dlib's ``examples/dnn_face_recognition_ex.cpp``)::

    block<N,BN,stride> = BN<con<N,3,3,1,1,relu<BN<con<N,3,3,stride,stride,SUBNET>>>>>
    residual           = add_prev1<block<N,BN,1,tag1<SUBNET>>>
    residual_down      = add_prev2<avg_pool<2,2,2,2,skip1<tag2<block<N,BN,2,tag1<SUBNET>>>>>>
    ares<N>            = relu<residual<block,N,affine>>
    ares_down<N>       = relu<residual_down<block,N,affine>>
    level0 = ares_down<256>
    level1 = ares<256,ares<256,ares_down<256>>>
    level2 = ares<128,ares<128,ares_down<128>>>
    level3 = ares<64,ares<64,ares<64,ares_down<64>>>>
    level4 = ares<32,ares<32,ares<32>>>
    anet   = loss_metric<fc_no_bias<128,avg_pool_everything<level0<level1<level2<level3<level4<
             max_pool<3,3,2,2,relu<affine<con<32,7,7,2,2,input_rgb_image_sized<150>>>>>>>>>>>>

dlib's conventions that matter for identical outputs (all checked against the file and against
dlib's descriptors):

- ``con`` / ``max_pool`` / ``avg_pool`` pad by 0 when the stride is not 1 and by ``k // 2`` when it
  is; output size ``1 + (n + 2p - k) // s`` (PyTorch's floor rule, so the same sizes): 150 → 72
  (7×7/2 conv) → 35 (3×3/2 max pool) → 35 (level4) → 17 → 8 → 4 → 2 → 1.
- ``add_prev`` outputs the element-wise *maximum* of its two inputs' shapes and zero-pads the
  smaller one at the end (extra channels, bottom rows, right columns). It matters twice: every
  ``ares_down`` adds an N-channel block output to an N/2-channel (or N-channel) pooled input, and
  at level1 the strided 3×3 conv gives 3×3 while the 2×2 average pool of the 8×8 input gives 4×4,
  so the sum is 4×4 with the conv branch's last row and column missing.
- ``affine`` is a per-channel ``gamma * x + beta``: the training network's batch norm
  (``bn_con``) was turned into this fixed form before the file was saved, so the file holds
  ``affine_`` layers and no running statistics.
- ``input_rgb_image_sized<150>`` maps an RGB pixel ``p`` to ``(p - mean) / 256`` with the mean
  ``(122.782, 117.001, 104.298)`` stored in the file (:attr:`DlibFaceResNet.input_mean`).
- ``fc_no_bias`` computes ``x @ W`` with ``W`` stored as (inputs × outputs) = 256 × 128, i.e. the
  transpose of ``nn.Linear.weight``.
- The descriptor is *not* normalised (norms ≈ 1.3–1.5 on ORL chips); ``normalize=True`` /
  :meth:`DlibFaceResNet.embed` give the unit-norm embeddings that cnnlab's face code expects.

Fine-tuning: the network's children are named ``stem``, ``level4``, ``level3``, ``level2``,
``level1``, ``level0`` and ``fc`` (input to output; see :data:`FINETUNE_GROUPS`), so parameter
names start with the group they belong to. :meth:`DlibFaceResNet.set_finetune` applies the
strategies ``"head"`` (only ``fc``), ``"partial"`` (the last ``n_levels`` levels + ``fc``) and
``"full"``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ...models.freezing import train_last

MODEL_FILE = "dlib_face_recognition_resnet_model_v1.dat"
"""File name of the face ResNet inside ``face_recognition_models/models/``."""

INPUT_SIZE = 150
"""Side of the aligned RGB chip the network was trained on (``input_rgb_image_sized<150>``)."""

FINETUNE_GROUPS = ("stem", "level4", "level3", "level2", "level1", "level0", "fc")
"""Names of :class:`DlibFaceResNet`'s children from input to output; every parameter name starts
with one of them (e.g. ``level1.0.conv1.weight``, ``fc.weight``)."""

FINETUNE_STRATEGIES = ("head", "partial", "full")

NORMALIZATION = {"mean": [122.782 / 255, 117.001 / 255, 104.298 / 255], "std": [256 / 255] * 3}
"""cnnlab's ``{"mean", "std"}`` normalisation (of images scaled to [0, 1]) equal to dlib's input layer."""

# (channels, number of ares units, whether the first unit is ares_down), input to output.
_LEVELS = (("level4", 32, 3, False), ("level3", 64, 4, True), ("level2", 128, 3, True),
           ("level1", 256, 3, True), ("level0", 256, 1, True))


def model_path(name: str = MODEL_FILE) -> Path:
    """Path of a model file shipped in ``face_recognition_models`` (default: the face ResNet).

    See :func:`cnnlab.face.detection.model_files.face_model_file`, the one locator of those files.

    Raises:
        FileNotFoundError: the package is not installed, or it lacks ``name``.
    """
    from ..detection.model_files import face_model_file

    return face_model_file(name)


# --------------------------------------------------------------------------- the network

class Affine(nn.Module):
    """dlib's ``affine`` layer in conv mode: ``weight[c] * x + bias[c]`` per channel (gamma, beta)."""

    def __init__(self, channels: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.addcmul(self.bias[:, None, None], x, self.weight[:, None, None])


def add_prev(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """dlib's ``add_prev``: ``a + b`` over the larger of each dimension, the smaller zero-padded at the end."""
    if a.shape == b.shape:
        return a + b
    c, h, w = (max(a.shape[i], b.shape[i]) for i in (1, 2, 3))

    def pad(t: torch.Tensor) -> torch.Tensor:
        return F.pad(t, (0, w - t.shape[3], 0, h - t.shape[2], 0, c - t.shape[1]))

    return pad(a) + pad(b)


class Stem(nn.Module):
    """``max_pool<3,3,2,2,relu<affine<con<32,7,7,2,2,·>>>>``: 3×150×150 → 32×35×35."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 32, 7, stride=2, padding=0)
        self.affine = Affine(32)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.max_pool2d(F.relu(self.affine(self.conv(x))), 3, stride=2, padding=0)


class Residual(nn.Module):
    """One ``ares<N>`` (``down=False``) or ``ares_down<N>`` (``down=True``) unit.

    ``relu(add_prev(affine2(conv2(relu(affine1(conv1(x))))), skip))`` with ``skip = x`` or, for
    ``ares_down``, ``skip = avg_pool<2,2,2,2>(x)``; ``conv1`` has stride 2 (padding 0) in
    ``ares_down``, stride 1 (padding 1) otherwise; ``conv2`` is always 3×3/1 (padding 1).

    Args:
        in_channels: channels of ``x``.
        channels: N.
        down: ``ares_down`` rather than ``ares``.
    """

    def __init__(self, in_channels: int, channels: int, down: bool):
        super().__init__()
        self.down = down
        stride = 2 if down else 1
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride=stride, padding=0 if down else 1)
        self.affine1 = Affine(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, stride=1, padding=1)
        self.affine2 = Affine(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.affine2(self.conv2(F.relu(self.affine1(self.conv1(x)))))
        skip = F.avg_pool2d(x, 2, stride=2) if self.down else x
        return F.relu(add_prev(y, skip))


class DlibFaceResNet(nn.Module):
    """dlib's face-recognition ResNet (``anet_type`` of ``dnn_face_recognition_ex.cpp``), 5.6 M parameters.

    Input: RGB float tensor ``(N, 3, 150, 150)`` with values in 0..255 (uint8 range, *not*
    scaled to 0..1) — an aligned chip as made by ``dlib.get_face_chip(img, shape, size=150,
    padding=0.25)``; :func:`preprocess` turns uint8 ``HxWx3`` arrays into it. The network subtracts
    :attr:`input_mean` and divides by 256 itself, like dlib's ``input_rgb_image_sized``.

    Children (fine-tuning groups, input to output — see :data:`FINETUNE_GROUPS`): ``stem``
    (:class:`Stem`), ``level4`` (3 × ``ares<32>``), ``level3`` (``ares_down<64>`` + 3 ×
    ``ares<64>``), ``level2`` (``ares_down<128>`` + 2 × ``ares<128>``), ``level1``
    (``ares_down<256>`` + 2 × ``ares<256>``), ``level0`` (``ares_down<256>``), each level an
    ``nn.Sequential`` of :class:`Residual`, then global average pooling and ``fc``
    (``nn.Linear(256, 128, bias=False)``).

    A fresh instance is randomly initialised (PyTorch defaults, identity affines); use
    :func:`cnnlab.face.models.dlib_dat.load_dlib_resnet` for dlib's trained weights.

    Args:
        input_size: spatial size the forward pass insists on (dlib's network is defined for
            150); ``None`` accepts any size of at least 32.
    """

    def __init__(self, input_size: int | None = INPUT_SIZE):
        super().__init__()
        self.input_size = input_size
        self.embedding_dim = 128
        self.num_features = 256
        self.register_buffer("input_mean", torch.tensor([122.782, 117.001, 104.298]))
        self.stem = Stem()
        in_ch = 32
        for name, ch, n, down in _LEVELS:
            units = [Residual(in_ch, ch, down)] + [Residual(ch, ch, False) for _ in range(n - 1)]
            setattr(self, name, nn.Sequential(*units))
            in_ch = ch
        self.fc = nn.Linear(256, 128, bias=False)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The 256-d globally pooled features below ``fc`` (dlib's ``avg_pool_everything`` output)."""
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"expected an RGB batch (N, 3, H, W) in 0..255, got shape {tuple(x.shape)}")
        if self.input_size is not None and tuple(x.shape[2:]) != (self.input_size, self.input_size):
            raise ValueError(f"dlib's face ResNet takes {self.input_size}x{self.input_size} aligned chips, "
                             f"got {tuple(x.shape[2:])} (dlib.get_face_chip(img, shape, size=150, padding=0.25))")
        return self.forward_normalized((x - self.input_mean.to(x.dtype)[:, None, None]) / 256.0)

    def forward_normalized(self, x: torch.Tensor) -> torch.Tensor:
        """:meth:`forward_features` of an input already mapped to ``(p - input_mean) / 256``.

        That is what cnnlab's image pipeline produces (scale to [0, 1], then normalise with mean
        ``input_mean / 255`` and std ``256 / 255``: :data:`NORMALIZATION`), so the face stages feed the
        network through this entry point.
        """
        x = self.stem(x)
        for name, *_ in _LEVELS:
            x = getattr(self, name)(x)
        return x.mean(dim=(2, 3))

    def forward(self, x: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        """The 128-d descriptor, raw (as dlib computes it) or L2-normalised.

        Args:
            x: ``(N, 3, 150, 150)`` RGB in 0..255.
            normalize: divide each descriptor by its Euclidean norm.
        """
        out = self.fc(self.forward_features(x))
        return F.normalize(out, dim=1) if normalize else out

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Unit-norm 128-d embeddings (``forward(x, normalize=True)``), cnnlab's face-code contract."""
        return self.forward(x, normalize=True)

    def get_classifier(self) -> nn.Module:
        """The head (``fc``), for code that treats the last linear layer as the classifier."""
        return self.fc

    def set_finetune(self, strategy: str, n_levels: int = 1) -> list[str]:
        """Freeze / unfreeze parameters by group name for a fine-tuning strategy.

        Args:
            strategy: ``"head"`` (only ``fc`` trains), ``"partial"`` (``fc`` and the last
                ``n_levels`` of ``level0``, ``level1``, ..., ``stem`` — counted from the output),
                or ``"full"`` (everything).
            n_levels: for ``"partial"``, 1..6 groups below ``fc`` (1: ``level0``; 2: ``level0`` and
                ``level1``; ...).

        Returns:
            Names of the parameters left trainable (``requires_grad=True``).

        Raises:
            ValueError: unknown strategy or ``n_levels`` out of range.
        """
        below = FINETUNE_GROUPS[:-1]
        if strategy == "head":
            n = 0
        elif strategy == "partial":
            if not 1 <= n_levels <= len(below):
                raise ValueError(f"n_levels must be 1..{len(below)} for strategy=partial, got {n_levels}")
            n = n_levels
        elif strategy == "full":
            n = len(below)
        else:
            raise ValueError(f"strategy must be one of {', '.join(FINETUNE_STRATEGIES)}, got {strategy!r}")
        return train_last(self, n)

    def trunk_groups(self) -> list[tuple[str, nn.Module]]:
        """The fine-tuning blocks of :mod:`cnnlab.models.freezing`: ``stem`` and the five levels, input to output."""
        return [(name, getattr(self, name)) for name in FINETUNE_GROUPS[:-1]]


def preprocess(images: np.ndarray | Sequence[np.ndarray]) -> torch.Tensor:
    """uint8 RGB chips → the float ``(N, 3, H, W)`` tensor in 0..255 that :class:`DlibFaceResNet` takes.

    Args:
        images: one ``HxWx3`` array, an ``NxHxWx3`` array or a sequence of ``HxWx3`` arrays (RGB
            order, as ``dlib.get_face_chip`` returns them; convert BGR from OpenCV first).
            Greyscale ``HxW`` chips are replicated to three channels.
    """
    arr = np.stack([np.asarray(a) for a in images]) if isinstance(images, (list, tuple)) else np.asarray(images)
    if arr.ndim == 2 or (arr.ndim == 3 and arr.shape[-1] != 3):
        arr = arr[None] if arr.ndim == 2 else arr
        arr = np.repeat(arr[..., None], 3, axis=-1)
    if arr.ndim == 3:
        arr = arr[None]
    if arr.ndim != 4 or arr.shape[-1] != 3:
        raise ValueError(f"expected HxWx3 / NxHxWx3 RGB images, got shape {arr.shape}")
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(0, 3, 1, 2)).astype(np.float32))
