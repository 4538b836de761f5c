"""A preview grid of an augmentation policy: originals in the first column, variants after."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from torchvision.transforms import v2  # noqa: E402

from ..data.prepared_split import read_prepared  # noqa: E402
from ..data.images import load_image  # noqa: E402
from .materialise import to_uint8  # noqa: E402


def preview_samples(prepared: str | Path, rows: int = 12) -> list[tuple[torch.Tensor, str]]:
    """The first training image of every class, up to ``rows`` classes (then spread evenly over them).

    Twelve rows by default, so that the ten digits (and any data set of up to twelve classes)
    show every class.
    """
    meta, manifest = read_prepared(prepared)
    first: dict[str, str] = {}
    for r in manifest:
        if r["split"] == "train":
            first.setdefault(r["label"], r["path"])
    classes = [c for c in meta["classes"] if c in first]
    step = max(1.0, len(classes) / rows)
    chosen = sorted({int(i * step) for i in range(min(rows, len(classes)))})
    mode = "L" if meta["channels"] == 1 else "RGB"
    return [(v2.functional.pil_to_tensor(load_image(Path(prepared) / first[classes[i]], mode)), classes[i])
            for i in chosen]


def _show(ax, image: torch.Tensor) -> None:
    img = to_uint8(image)
    if img.shape[0] == 1:
        ax.imshow(img[0].numpy(), cmap="gray", vmin=0, vmax=255, interpolation="nearest")
    else:
        ax.imshow(img.permute(1, 2, 0).numpy(), interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])


def preview_grid(samples: Sequence[tuple[torch.Tensor, str]], policy: Callable[[torch.Tensor], torch.Tensor],
                 path: str | Path, variants: int = 7, title: str = "", seed: int = 0) -> Path:
    """Save a grid PNG: one row per ``(uint8 CHW image, label)``, the original then ``variants`` draws.

    Raises:
        ValueError: ``samples`` is empty.
    """
    if not samples:
        raise ValueError("no images to preview")
    torch.manual_seed(seed)
    cols = variants + 1
    fig, axes = plt.subplots(len(samples), cols, figsize=(1.2 * cols + 0.6, 1.2 * len(samples) + 0.8),
                             dpi=100, squeeze=False)
    for r, (image, label) in enumerate(samples):
        for c in range(cols):
            _show(axes[r][c], image if c == 0 else policy(image))
        axes[r][0].set_ylabel(f"class {label}", fontsize=9)
    for c in range(cols):
        axes[0][c].set_title("original" if c == 0 else f"variant {c}", fontsize=9)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return Path(path)
