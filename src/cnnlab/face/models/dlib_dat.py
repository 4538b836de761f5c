"""dlib's binary ``.dat`` serialisation of its face ResNet, parsed without dlib into :class:`DlibFaceResNet` weights.

The file is dlib's own serialisation of the ``anet_type`` network (see
:mod:`cnnlab.face.models.dlib_resnet` for the architecture and dlib's conventions).
:func:`parse_dlib_dat` reads any such file into layers; :func:`read_dlib_dat` checks them, layer by
layer, against the architecture and returns a state dict; :func:`convert` writes that state dict
once as a ``.pt`` file; :func:`load_dlib_resnet` gives the trained network.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...io import atomic_path
from .dlib_resnet import _LEVELS, INPUT_SIZE, DlibFaceResNet, model_path


@dataclass
class DlibLayer:
    """One layer of a parsed dlib network, in forward order.

    Attributes:
        kind: ``"con"``, ``"affine"``, ``"relu"``, ``"max_pool"``, ``"avg_pool"``, ``"add_prev"``,
            ``"fc"``, or ``"tag"`` for a ``tagN`` / ``skipN`` layer (dlib serialises neither
            their id nor which of the two it is, only their position).
        version: the layer's version string in the file (``"con_4"``, ``"affine_"``, ...).
        attrs: hyper-parameters (``num_filters``, ``nr``, ``nc``, ``stride_y``, ``padding_x``,
            ``num_outputs``, ...).
        params: the layer's parameter floats (one flat float32 array) or ``None``.
        offset: byte offset of the layer's version string in the file.
    """

    kind: str
    version: str = ""
    attrs: dict[str, Any] = field(default_factory=dict)
    params: np.ndarray | None = None
    offset: int = 0


@dataclass
class DlibNet:
    """A parsed dlib network file.

    Attributes:
        loss: loss-layer version string (``"loss_metric_2"``).
        loss_attrs: its settings; for ``loss_metric_2`` ``margin`` (0.04) and ``distance_threshold``
            (0.6, dlib's same-person threshold on raw descriptor distance).
        input: input-layer version string (``"input_rgb_image_sized"``).
        input_attrs: ``mean`` (R, G, B) and ``nr``, ``nc`` (150, 150).
        layers: the computational layers, input to output (see :class:`DlibLayer`).
    """

    loss: str
    loss_attrs: dict[str, Any]
    input: str
    input_attrs: dict[str, Any]
    layers: list[DlibLayer]

    @property
    def num_params(self) -> int:
        """Number of parameter floats stored in the file."""
        return sum(int(layer.params.size) for layer in self.layers if layer.params is not None)


class _Reader:
    """Sequential reader of dlib's serialisation primitives over an in-memory file."""

    def __init__(self, data: bytes, path: Path):
        self.data, self.path, self.pos = memoryview(data), path, 0

    def fail(self, what: str) -> ValueError:
        return ValueError(f"{self.path}: not a dlib face ResNet file as expected ({what}, at byte {self.pos})")

    def take(self, n: int, what: str) -> memoryview:
        if n < 0 or self.pos + n > len(self.data):
            raise ValueError(f"{self.path}: truncated or corrupt dlib file: {what} needs {n} bytes at "
                             f"byte {self.pos}, file has {len(self.data)}")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def int(self, what: str = "integer") -> int:
        """dlib ``pack_int``: a control byte (low nibble: byte count ≤ 8, 0x80: negative), then LE bytes."""
        ctrl = self.take(1, what)[0]
        size = ctrl & 0x0F
        if size > 8 or ctrl & 0x70:
            self.pos -= 1
            raise self.fail(f"bad integer control byte 0x{ctrl:02x} for {what}")
        value = int.from_bytes(self.take(size, what), "little")
        return -value if ctrl & 0x80 else value

    def string(self, what: str = "string", max_len: int = 256) -> str:
        """``std::string``: packed length, then the characters."""
        n = self.int(what)
        if not 0 <= n <= max_len:
            raise self.fail(f"implausible length {n} of {what}")
        raw = bytes(self.take(n, what))
        try:
            return raw.decode("ascii")
        except UnicodeDecodeError:
            raise self.fail(f"non-text {what} {raw[:20]!r}") from None

    def float(self, what: str = "float") -> float:
        """dlib's portable float: packed int64 mantissa and int16 exponent (``mantissa * 2**exponent``)."""
        mantissa, exponent = self.int(what), self.int(what)
        special = {32000: math.inf, 32001: -math.inf, 32002: math.nan}
        return special[exponent] if exponent in special else math.ldexp(mantissa, exponent)

    def bool(self, what: str = "bool") -> bool:
        """dlib writes a ``bool`` as the character ``'1'`` or ``'0'``."""
        c = self.take(1, what)[0]
        if c not in (0x30, 0x31):
            self.pos -= 1
            raise self.fail(f"expected '0' or '1' for {what}, got 0x{c:02x}")
        return c == 0x31

    def tensor(self, what: str = "tensor") -> np.ndarray:
        """``resizable_tensor`` version 2: ints (num_samples, k, nr, nc), then raw LE float32 data."""
        if (v := self.int(what)) != 2:
            raise self.fail(f"{what} has version {v}, expected 2")
        shape = tuple(self.int(what) for _ in range(4))
        if any(s < 0 for s in shape):
            raise self.fail(f"negative {what} shape {shape}")
        n = int(np.prod(shape, dtype=np.int64))
        buf = self.take(4 * n, f"{what} data {shape}")
        return np.frombuffer(buf, dtype="<f4").astype(np.float32).reshape(shape)

    def alias(self, what: str = "alias_tensor") -> tuple[int, int, int, int]:
        """``alias_tensor`` version 1: its shape only."""
        if (v := self.int(what)) != 1:
            raise self.fail(f"{what} has version {v}, expected 1")
        return tuple(self.int(what) for _ in range(4))  # type: ignore[return-value]


def _pool_attrs(r: _Reader) -> dict[str, int]:
    keys = ("nr", "nc", "stride_y", "stride_x", "padding_y", "padding_x")
    return {k: r.int(k) for k in keys}


def _lr_multipliers(r: _Reader) -> dict[str, float]:
    keys = ("learning_rate_multiplier", "weight_decay_multiplier", "bias_learning_rate_multiplier",
            "bias_weight_decay_multiplier")
    return {k: r.float(k) for k in keys}


def _layer_details(r: _Reader) -> DlibLayer:
    """Parse one layer's details (``serialize(LAYER_DETAILS)``), starting at its version string."""
    offset = r.pos
    version = r.string("layer version string")
    if version == "con_4":
        params = r.tensor("con params")
        attrs: dict[str, Any] = {k: r.int(k) for k in ("num_filters", "nr", "nc", "stride_y", "stride_x",
                                                        "padding_y", "padding_x")}
        attrs["filters_shape"], attrs["biases_shape"] = r.alias("con filters"), r.alias("con biases")
        attrs.update(_lr_multipliers(r))
        return DlibLayer("con", version, attrs, params.reshape(-1), offset)
    if version == "affine_":
        params = r.tensor("affine params")
        gamma, beta = r.alias("affine gamma"), r.alias("affine beta")
        attrs = {"gamma_shape": gamma, "beta_shape": beta, "mode": r.int("affine mode")}
        return DlibLayer("affine", version, attrs, params.reshape(-1), offset)
    if version == "relu_":
        return DlibLayer("relu", version, {}, None, offset)
    if version in ("max_pool_2", "avg_pool_2"):
        return DlibLayer(version[:-2], version, _pool_attrs(r), None, offset)
    if version == "add_prev_":
        return DlibLayer("add_prev", version, {}, None, offset)
    if version == "fc_2":
        attrs = {"num_outputs": r.int("fc num_outputs"), "num_inputs": r.int("fc num_inputs")}
        params = r.tensor("fc params")
        attrs["weights_shape"], attrs["biases_shape"] = r.alias("fc weights"), r.alias("fc biases")
        attrs["bias_mode"] = r.int("fc bias mode")
        attrs.update(_lr_multipliers(r))
        return DlibLayer("fc", version, attrs, params.reshape(-1), offset)
    r.pos = offset
    raise r.fail(f"unsupported layer {version!r}")


def _layer_trailer(r: _Reader, input_layer: bool) -> None:
    """Skip ``add_layer``'s state after the details: 3 bools and 3 tensors (+ an int for the input layer)."""
    for what in ("this_layer_setup_called", "gradient_input_is_stale", "get_output_and_gradient_input_disabled"):
        r.bool(what)
    for what in ("x_grad", "cached_output", "grad_final" if input_layer else "params_grad"):
        r.tensor(what)
    if input_layer:
        r.int("sample_expansion_factor")


def parse_dlib_dat(path: str | Path) -> DlibNet:
    """Parse a dlib DNN file of the face-ResNet kind (``loss_metric`` over ``input_rgb_image_sized``).

    dlib's ``add_loss_layer`` writes ``version, loss details, subnetwork``; each ``add_layer``
    writes ``version (2), subnetwork, layer details, 3 bools, 3 tensors``; ``tagN`` / ``skipN``
    write ``version (1), subnetwork``; the bottom ``add_layer`` over the input writes ``version (3),
    input layer, layer details, 3 bools, 3 tensors, an int``. Since each layer writes its
    subnetwork before its own details, the file holds all the outer layers' version numbers first
    and then the details in forward order, starting with the input layer. Integers are dlib
    ``pack_int``; tensors are shape + raw little-endian float32.

    Args:
        path: the ``.dat`` file.

    Returns:
        The network as a :class:`DlibNet` (parameters as float32 numpy arrays, copied out of the file).

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file is not a dlib network of this kind, is truncated, or has trailing
            bytes; the message names the file and the byte offset.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"dlib model file not found: {path}")
    r = _Reader(path.read_bytes(), path)
    if (v := r.int("add_loss_layer version")) != 1:
        raise r.fail(f"add_loss_layer version {v}, expected 1")
    loss = r.string("loss layer version string")
    if loss != "loss_metric_2":
        raise r.fail(f"loss layer {loss!r}, expected 'loss_metric_2'")
    loss_attrs = {"margin": r.float("margin"), "distance_threshold": r.float("distance threshold")}

    stack: list[int] = []  # versions, outermost first: 2 = add_layer, 1 = tag/skip, 3 ends (input)
    while (v := r.int("layer version")) != 3:
        if v not in (1, 2) or len(stack) > 10_000:
            raise r.fail(f"layer version {v} (expected 1 for tag/skip or 2 for add_layer, 3 for the input)")
        stack.append(v)

    input_name = r.string("input layer version string")
    if input_name != "input_rgb_image_sized":
        raise r.fail(f"input layer {input_name!r}, expected 'input_rgb_image_sized'")
    mean = tuple(r.float(f"input mean {c}") for c in "RGB")
    input_attrs = {"mean": mean, "nr": r.int("input nr"), "nc": r.int("input nc")}

    layers = [_layer_details(r)]
    _layer_trailer(r, input_layer=True)
    for v in reversed(stack):
        if v == 1:
            layers.append(DlibLayer("tag", "", {}, None, r.pos))
        else:
            layers.append(_layer_details(r))
            _layer_trailer(r, input_layer=False)
    if r.pos != len(r.data):
        raise r.fail(f"{len(r.data) - r.pos} trailing bytes after the network")
    return DlibNet(loss, loss_attrs, input_name, input_attrs, layers)


# --------------------------------------------------------------------------- mapping onto the network

def _expected_layout() -> list[tuple[str, dict[str, Any], str | None]]:
    """dlib's layers of ``anet_type`` in forward order: ``(kind, attrs to check, our module name)``."""
    def con(n: int, k: int, s: int, name: str) -> tuple[str, dict[str, Any], str]:
        p = 0 if s != 1 else k // 2
        return ("con", {"num_filters": n, "nr": k, "nc": k, "stride_y": s, "stride_x": s,
                        "padding_y": p, "padding_x": p}, name)

    out: list[tuple[str, dict[str, Any], str | None]] = [
        con(32, 7, 2, "stem.conv"), ("affine", {}, "stem.affine"), ("relu", {}, None),
        ("max_pool", {"nr": 3, "nc": 3, "stride_y": 2, "stride_x": 2, "padding_y": 0, "padding_x": 0}, None)]
    for level, ch, n, down in _LEVELS:
        for i in range(n):
            d = down and i == 0
            m = f"{level}.{i}"
            out += [("tag", {}, None), con(ch, 3, 2 if d else 1, f"{m}.conv1"), ("affine", {}, f"{m}.affine1"),
                    ("relu", {}, None), con(ch, 3, 1, f"{m}.conv2"), ("affine", {}, f"{m}.affine2")]
            if d:
                out += [("tag", {}, None), ("tag", {}, None),
                        ("avg_pool", {"nr": 2, "nc": 2, "stride_y": 2, "stride_x": 2,
                                      "padding_y": 0, "padding_x": 0}, None)]
            out += [("add_prev", {}, None), ("relu", {}, None)]
    out += [("avg_pool", {"nr": 0, "nc": 0, "stride_y": 1, "stride_x": 1, "padding_y": 0, "padding_x": 0}, None),
            ("fc", {"num_outputs": 128, "num_inputs": 256, "bias_mode": 1}, "fc")]
    return out


def read_dlib_dat(path: str | Path | None = None) -> "OrderedDict[str, torch.Tensor]":
    """dlib's face-ResNet file → a state dict of :class:`DlibFaceResNet`, without dlib.

    The layers of the file (:func:`parse_dlib_dat`) are matched one by one, in forward order,
    against the architecture of ``dnn_face_recognition_ex.cpp`` (kinds, filter counts, kernel
    sizes, strides, paddings, tag/skip positions). A ``con`` layer's flat parameters are the
    filters ``(num_filters, k, nr, nc)`` — PyTorch's ``Conv2d.weight`` layout — then the biases;
    an ``affine`` layer's are gamma then beta; ``fc_no_bias``'s are a row-major (256 inputs × 128
    outputs) matrix, stored transposed as ``fc.weight``. The input mean becomes the
    ``input_mean`` buffer.

    Args:
        path: the ``.dat`` file; ``None``: the one in ``face_recognition_models`` (:func:`model_path`).

    Raises:
        FileNotFoundError: no such file / package.
        ValueError: the file is not this network (wrong file, other architecture, truncated); the
            message names the file and the first mismatching layer.
    """
    path = model_path() if path is None else Path(path)
    net = parse_dlib_dat(path)
    expected = _expected_layout()
    kinds = [layer.kind for layer in net.layers]
    if len(kinds) != len(expected):
        raise ValueError(f"{path}: {len(kinds)} layers, expected {len(expected)} for dlib's face ResNet "
                         f"(dnn_face_recognition_ex.cpp)")
    if (net.input_attrs["nr"], net.input_attrs["nc"]) != (INPUT_SIZE, INPUT_SIZE):
        raise ValueError(f"{path}: input {net.input_attrs['nr']}x{net.input_attrs['nc']}, expected 150x150")
    sd: OrderedDict[str, torch.Tensor] = OrderedDict()
    sd["input_mean"] = torch.tensor(net.input_attrs["mean"], dtype=torch.float32)
    in_ch = 3
    for i, (layer, (kind, attrs, name)) in enumerate(zip(net.layers, expected)):
        got = {k: layer.attrs.get(k) for k in attrs}
        if layer.kind != kind or got != attrs:
            raise ValueError(f"{path}: layer {i} (byte {layer.offset}) is {layer.kind} {layer.version} {got}, "
                             f"expected {kind} {attrs} of dlib's face ResNet")
        p = layer.params
        if kind == "con":
            n, k = attrs["num_filters"], attrs["nr"]
            if p.size != n * in_ch * k * k + n or layer.attrs["filters_shape"] != (n, in_ch, k, k):
                raise ValueError(f"{path}: layer {i} (con) holds {p.size} floats / filters "
                                 f"{layer.attrs['filters_shape']}, expected {n}x{in_ch}x{k}x{k} + {n} biases")
            sd[f"{name}.weight"] = torch.from_numpy(p[:-n].reshape(n, in_ch, k, k).copy())
            sd[f"{name}.bias"] = torch.from_numpy(p[-n:].copy())
            in_ch = n
        elif kind == "affine":
            if p.size != 2 * in_ch or layer.attrs["gamma_shape"] != (1, in_ch, 1, 1) or layer.attrs["mode"] != 0:
                raise ValueError(f"{path}: layer {i} (affine) holds {p.size} floats, gamma "
                                 f"{layer.attrs['gamma_shape']}, mode {layer.attrs['mode']}; expected "
                                 f"conv-mode gamma and beta of {in_ch} channels")
            sd[f"{name}.weight"] = torch.from_numpy(p[:in_ch].copy())
            sd[f"{name}.bias"] = torch.from_numpy(p[in_ch:].copy())
        elif kind == "fc":
            if p.size != 256 * 128 or layer.attrs["weights_shape"] != (256, 128, 1, 1):
                raise ValueError(f"{path}: layer {i} (fc) holds {p.size} floats, weights "
                                 f"{layer.attrs['weights_shape']}; expected 256x128")
            sd["fc.weight"] = torch.from_numpy(p.reshape(256, 128).T.copy())
    return sd


def convert(dat_path: str | Path | None, out_path: str | Path) -> Path:
    """Convert dlib's ``.dat`` once into a PyTorch state dict file (written atomically).

    The result loads with ``torch.load(out_path, weights_only=True)`` (or :func:`load_dlib_resnet`)
    and needs neither dlib nor this parser.

    Args:
        dat_path: dlib's file; ``None``: the one in ``face_recognition_models``.
        out_path: where to write the state dict (``.pt``).

    Returns:
        ``out_path``.
    """
    sd = read_dlib_dat(dat_path)
    with atomic_path(out_path) as tmp:
        torch.save(sd, tmp)
    return Path(out_path)


def load_dlib_resnet(path: str | Path | None = None) -> DlibFaceResNet:
    """dlib's trained face ResNet as a :class:`DlibFaceResNet` in eval mode.

    Args:
        path: dlib's ``.dat`` (parsed by :func:`read_dlib_dat`), a state dict written by
            :func:`convert` (any other suffix, loaded with ``weights_only=True``), or ``None`` for
            the ``.dat`` inside ``face_recognition_models``.

    Raises:
        FileNotFoundError: no such file / package.
        ValueError: the file is not this network, or does not fit it.
    """
    path = model_path() if path is None else Path(path)
    if path.suffix == ".dat":
        sd = read_dlib_dat(path)
    else:
        from ...models.convert import load_weight_file
        sd = load_weight_file(path)
    model = DlibFaceResNet()
    try:
        model.load_state_dict(sd, strict=True)
    except RuntimeError as err:
        raise ValueError(f"{path}: does not fit DlibFaceResNet: {err}") from err
    return model.eval()
