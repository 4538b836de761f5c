"""``visualise``: a checkpoint + an image folder → one gallery per layer and ``units.json``."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Sequence

import numpy as np

SPLITS = ("train", "val", "test")


def dataset_name(data: str | Path) -> str:
    """``data/prepared/digits/test`` → ``digits``; ``data/aligned/orl_faces_ids`` → ``orl_faces_ids``."""
    path = Path(data).resolve()
    return path.parent.name if path.name in SPLITS else path.name


def model_name(ckpt: str | Path) -> str:
    """``models/digits/lenet5/seed0/best.ckpt`` → ``lenet5-seed0``; ``models/faces/course39-ids/best.ckpt`` → ``course39-ids``."""
    parent = Path(ckpt).resolve().parent
    return f"{parent.parent.name}-{parent.name}" if re.fullmatch(r"seed\d+", parent.name) else parent.name


def layer_file(layer: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", layer) + ".png"


def visualise(ckpt: str | Path, data: str | Path, out: str | Path, layers: Sequence[str] | None = None,
              n_layers: int = 4, units: int = 16, k: int = 9, max_images: int = 1000, batch_size: int = 64,
              progress: bool = True) -> dict[str, Any]:
    """Draw ``out/<layer>.png`` for each layer and write ``out/units.json``, all at once (atomically).

    Args:
        ckpt: a cnnlab classifier or face-encoder checkpoint.
        data: folder of images (searched recursively, e.g. a prepared split or a whole data set).
        out: output folder (replaced).
        layers: ``named_modules`` paths; None: ``n_layers`` convolutions spread over the depth.
        n_layers: how many layers when ``layers`` is None.
        units: units (channels) per layer, the first ones.
        k: top patches per unit.
        max_images: at most this many images, evenly spaced over the sorted file list.
        batch_size: images per forward pass.
        progress: progress bars.

    Returns:
        The summary written to ``units.json`` (per layer: receptive field, units, top activations
        and the files they come from).

    Raises:
        FileNotFoundError, ValueError: missing/bad checkpoint or data.
        KeyError: a layer the network does not have.
    """
    from ..io import atomic_path, write_json
    from .gallery import draw_gallery
    from .network import default_layers, image_files, load_images, load_network
    from .units import top_patches

    net = load_network(ckpt)
    layers = list(layers) if layers else default_layers(net, n_layers)
    net.check_layers(layers)
    files = image_files(data)
    if len(files) > max_images:
        files = [files[i] for i in np.linspace(0, len(files) - 1, max_images).round().astype(int)]
    images = load_images(files, net)
    results = top_patches(net, layers, images, units=units, k=k, batch_size=batch_size, progress=progress)
    title = f"{model_name(ckpt)} on {dataset_name(data)} · "
    summary: dict[str, Any] = {"checkpoint": str(ckpt), "data": str(data), "images": len(files), "layers": {}}
    with atomic_path(out) as tmp:
        tmp.mkdir()
        for lu in results:
            draw_gallery(lu, tmp / layer_file(lu.layer), title=title)
            summary["layers"][lu.layer] = {
                "file": layer_file(lu.layer), "receptive_field": list(lu.field.size),
                "stride": [int(lu.field.h.jump), int(lu.field.w.jump)], "units": lu.units,
                "top_activations": np.round(lu.values, 5).tolist(),
                "top_images": [[str(files[i]) for i in row] for row in lu.images],
                "boxes": lu.boxes.tolist()}
        write_json(tmp / "units.json", summary)
    return summary
