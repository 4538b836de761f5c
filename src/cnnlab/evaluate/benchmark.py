"""Benchmark ensembles and multi-crop: accuracy gained against latency and memory paid.

The grid is {single model, ensemble of N} × {crop sets}. Costs are measured on CPU:

* **latency** — median over ``repeats`` timed calls (after one warm-up) of the predictor on one
  batch of ``batch_size`` test images, divided by ``batch_size``: milliseconds per test image,
  crops and members included. Threads are whatever torch uses (the stage pins them).
* **memory** — parameter and buffer bytes of every network run, plus the peak of bytes held by
  tensors created during one batch's forward pass (crops, activations, outputs; the input batch
  excluded). Tensors are tracked at the ATen-op level (:class:`LiveBytes`), so the figure is
  exact and repeatable; allocator slack and scratch space inside a single kernel are not seen.

Both are also given as multipliers of the single model on the centre crop.
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import torch
import torch.nn as nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from ..bench.report import DEFAULT_PATH, write_section
from ..data.datamodule import ImageFolderDataModule
from .cost import latency_ms, model_bytes
from ..io import atomic_path
from .ensemble import Ensemble, load_ensemble
from .multicrop import CENTRE, Crop, MultiCropPredictor, multicrop_embed, resize_for_crops

# Published single-crop → 10-crop figures (error, %), shown beside ours in docs/BENCHMARKS.md.
REFERENCES = (
    {"name": "GoogLeNet, top-5 error", "source": "Szegedy et al. 2015, Table 3", "single": 10.07, "ten": 9.15},
    {"name": "ResNet-50, top-1 error", "source": "reported for He et al. 2016's ResNet-50", "single": 24.8,
     "ten": 23.0},
)
BASE = "single.centre"
MIB = 2 ** 20


class LiveBytes(TorchDispatchMode):
    """Track bytes held by tensors created inside the mode; ``peak`` is the most held at once.

    Every op's outputs are recorded by storage (views are not counted twice); storages that
    have been freed are dropped before each op's outputs are added.
    """

    def __init__(self) -> None:
        super().__init__()
        self.live = 0
        self.peak = 0
        self._refs: dict[int, tuple[int, int]] = {}

    def _sweep(self) -> None:
        for key, (ref, nbytes) in list(self._refs.items()):
            if torch.UntypedStorage._expired(ref):
                torch.UntypedStorage._free_weak_ref(ref)
                del self._refs[key]
                self.live -= nbytes

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        # Sweep first: a freed storage's address may be reused by this op's output.
        self._sweep()
        for t in tree_leaves(out):
            if isinstance(t, torch.Tensor):
                st = t.untyped_storage()
                if st.data_ptr() in self._refs or st.nbytes() == 0:
                    continue
                self._refs[st.data_ptr()] = (st._weak_ref(), st.nbytes())
                self.live += st.nbytes()
        self.peak = max(self.peak, self.live)
        return out

    def __exit__(self, *exc) -> None:
        for ref, _ in self._refs.values():
            torch.UntypedStorage._free_weak_ref(ref)
        self._refs.clear()
        super().__exit__(*exc)


@torch.inference_mode()
def peak_memory_bytes(fn: Callable[[torch.Tensor], torch.Tensor], batch: torch.Tensor) -> int:
    """Parameters of ``fn`` (if a module) + peak live tensor bytes while it runs on ``batch``."""
    with LiveBytes() as live:
        fn(batch)
    return model_bytes(fn) + live.peak


@torch.inference_mode()
def accuracy(predictor: nn.Module, images: torch.Tensor, targets: torch.Tensor, batch_size: int) -> float:
    """Top-1 accuracy of ``predictor`` (any scores whose argmax is the class) in batches."""
    pred = torch.cat([predictor(images[i:i + batch_size]).argmax(1) for i in range(0, len(images), batch_size)])
    return float((pred == targets).float().mean())


def load_split_images(prepared_root: str | Path, hp: Mapping[str, Any], resize: float,
                      split: str = "test") -> tuple[torch.Tensor, torch.Tensor, dict]:
    """A split as one normalised ``[N, C, H, W]`` tensor at :func:`resize_for_crops` size.

    Images are resized (antialiased) to ``resize × input_size`` and normalised with the
    checkpoint's statistics, as the evaluate stage does, before any crop is cut.

    Returns:
        ``(images, targets, the prepared folder's dataset.json)``.

    Raises:
        ValueError: the folder's classes or channels differ from the checkpoint's.
    """
    dm = ImageFolderDataModule(prepared_root, resize_for_crops(hp["input_size"], resize))
    if dm.classes != hp["classes"] or dm.channels != hp["in_chans"]:
        raise ValueError(f"{prepared_root}: classes {dm.classes} / {dm.channels} channels differ from the "
                         f"checkpoints' {hp['classes']} / {hp['in_chans']}")
    dm.meta["mean"], dm.meta["std"] = hp["normalization"]["mean"], hp["normalization"]["std"]
    ds = dm.split(split)
    return torch.stack([ds[i][0] for i in range(len(ds))]), ds.targets, dm.meta


def cost_metrics(prefix: str, fn: Callable[[torch.Tensor], torch.Tensor], batch: torch.Tensor,
                 repeats: int) -> dict[str, float]:
    """``<prefix>.latency_ms`` and ``<prefix>.memory_mib`` of ``fn`` on ``batch``."""
    return {f"{prefix}.latency_ms": latency_ms(fn, batch, repeats),
            f"{prefix}.memory_mib": peak_memory_bytes(fn, batch) / MIB}


def add_multipliers(metrics: dict[str, float], base: str = BASE) -> None:
    """Add ``.latency_x`` and ``.memory_x`` beside every cost, relative to the ``base`` cell."""
    for key in [k for k in metrics if k.endswith((".latency_ms", ".memory_mib"))]:
        prefix, cost = key.rsplit(".", 1)
        name = cost.split("_")[0]
        metrics[f"{prefix}.{name}_x"] = metrics[key] / metrics[f"{base}.{cost}"]


AS_EVALUATED = "as_evaluated"


def _classifier_cells(name: str, crops: Sequence[Crop], ensemble: Ensemble, size: Sequence[int],
                      data: tuple[torch.Tensor, torch.Tensor], batch: torch.Tensor, batch_size: int,
                      repeats: int) -> dict[str, float]:
    """Accuracy and cost of one crop set for the first member, every member, and the ensemble."""
    images, targets = data
    members = list(ensemble.members)
    accs = [accuracy(MultiCropPredictor(m, crops, size), images, targets, batch_size) for m in members]
    ens = MultiCropPredictor(ensemble, crops, size)
    return {
        f"n_crops.{name}": len(crops),
        f"single.{name}.acc": accs[0],
        f"single.{name}.acc_mean": statistics.fmean(accs),
        # Sample standard deviation over seeds; 0 when there is only one.
        f"single.{name}.acc_std": statistics.stdev(accs) if len(accs) > 1 else 0.0,
        f"ensemble.{name}.acc": accuracy(ens, images, targets, batch_size),
        **cost_metrics(f"single.{name}", MultiCropPredictor(members[0], crops, size), batch, repeats),
        **cost_metrics(f"ensemble.{name}", ens, batch, repeats),
    }


def run_benchmark(ckpts: Sequence[str | Path], prepared_root: str | Path, crop_sets: Mapping[str, Sequence[Crop]],
                  out_dir: str | Path, *, resize: float = 1.143, batch_size: int = 32, repeats: int = 5,
                  split: str = "test") -> dict[str, float]:
    """Measure the {single, ensemble} × crop-set grid and write ``table.md`` and ``metrics.json``.

    Args:
        ckpts: classifier checkpoints of independently trained networks (e.g. one per seed);
            the first is "the single model", all of them form the ensemble.
        prepared_root: prepared folder whose ``split`` is scored.
        crop_sets: name → crops; a ``centre`` set (the cost baseline) is added first if missing.
        out_dir: written atomically as a whole.
        resize: test images are resized to ``resize × input_size`` before cropping.
        batch_size: images per forward pass, for scoring and for the cost measurements.
        repeats: timed calls per latency (the median is kept).
        split: the split to score.

    Returns:
        The flat metrics written to ``metrics.json`` (keys like ``ensemble.ten.acc``,
        ``single.ten.acc_mean``, ``single.ten.latency_x``).
    """
    ensemble, hp = load_ensemble(ckpts)
    images, targets, meta = load_split_images(prepared_root, hp, resize, split)
    batch = images[torch.arange(batch_size) % len(images)]
    crop_sets = dict(crop_sets) if "centre" in crop_sets else {"centre": CENTRE, **crop_sets}
    metrics: dict[str, float] = {"n_members": len(ckpts), "n_test": len(targets), "batch_size": batch_size,
                                 "resize": resize, "threads": torch.get_num_threads()}
    # the baseline as `evaluate` scores a checkpoint: the image at the input size, no extra resize
    plain, plain_targets, _ = load_split_images(prepared_root, hp, 1.0, split)
    metrics |= _classifier_cells(AS_EVALUATED, CENTRE, ensemble, hp["input_size"], (plain, plain_targets),
                                 plain[torch.arange(batch_size) % len(plain)], batch_size, repeats)
    for name, crops in crop_sets.items():
        metrics |= _classifier_cells(name, crops, ensemble, hp["input_size"], (images, targets), batch, batch_size,
                                     repeats)
    add_multipliers(metrics)
    caption = (f"{meta.get('name', Path(prepared_root).name)} / {split}: {len(targets)} images resized to "
               f"{'×'.join(map(str, images.shape[-2:]))}, crops of {'×'.join(map(str, hp['input_size']))}; "
               f"{hp['arch']}, single = {Path(ckpts[0]).parent.name}. Latency: median of {repeats} runs of a "
               f"batch of {batch_size} on {metrics['threads']} CPU thread(s), per image. Memory: parameters + "
               f"peak live tensors for one batch. `{AS_EVALUATED}`: the images at the input size, no resize, as "
               f"`evaluate` scores them. One test image is {100 / len(targets):.2f} points: differences of a few "
               f"points are a few images.")
    write_outputs(out_dir, metrics, format_table(metrics, [AS_EVALUATED, *crop_sets], caption))
    return metrics


def write_outputs(out_dir: str | Path, metrics: Mapping[str, float], table: str) -> None:
    """Write ``table.md`` and ``metrics.json`` into ``out_dir``, replacing it atomically."""
    with atomic_path(out_dir) as tmp:
        tmp.mkdir()
        (tmp / "table.md").write_text(table)
        (tmp / "metrics.json").write_text(json.dumps(dict(metrics), indent=2, sort_keys=True) + "\n")


def _pct(x: float) -> str:
    return f"{100 * x:.2f} %"


def cost_cells(m: Mapping[str, float], prefix: str) -> str:
    """The latency and memory cells (absolute, and × the single model on one crop) of a grid cell."""
    return (f"{m[f'{prefix}.latency_ms']:.4f} | {m[f'{prefix}.latency_x']:.2f}× | "
            f"{m[f'{prefix}.memory_mib']:.3f} | {m[f'{prefix}.memory_x']:.2f}×")


def format_table(metrics: Mapping[str, float], crop_names: Sequence[str], caption: str = "") -> str:
    """The benchmark grid as a markdown table (one row per models × crops cell)."""
    n = int(metrics["n_members"])
    lines = [caption, "", "| models | crops | n crops | accuracy | latency (ms/image) | latency × | "
             "memory (MiB) | memory × |", "|---|---|---:|---:|---:|---:|---:|---:|"]
    for name in crop_names:
        k = int(metrics[f"n_crops.{name}"])
        s, e = f"single.{name}", f"ensemble.{name}"
        lines += [
            f"| single (first) | {name} | {k} | {_pct(metrics[s + '.acc'])} | {cost_cells(metrics, s)} |",
            f"| single, mean ± std of {n} | {name} | {k} | {_pct(metrics[s + '.acc_mean'])} ± "
            f"{100 * metrics[s + '.acc_std']:.2f} | | | | |",
            f"| ensemble of {n} | {name} | {k} | {_pct(metrics[e + '.acc'])} | {cost_cells(metrics, e)} |",
        ]
    return "\n".join(lines).lstrip() + "\n"


def gain_cost_markdown(results: Mapping[str, Mapping[str, float]]) -> str:
    """The gain/cost table for docs/BENCHMARKS.md: our grids as error rates beside the references.

    Args:
        results: a label (e.g. ``"digits, LeNet-5"``) → that run's ``metrics.json``.
    """
    lines = ["## Ensembles and multi-crop at test time", "",
             "Top-1 error of a single network (the first seed) and of the ensemble of all seeds, per "
             "crop set; cost as multipliers of the single network on the centre crop.", "",
             "| data set | models | crops | error | Δ error (points) | latency × | memory × |",
             "|---|---|---|---:|---:|---:|---:|"]
    for label, m in results.items():
        base = 100 * (1 - m[f"{BASE}.acc"])
        crop_names = [k.split(".", 1)[1] for k in m if k.startswith("n_crops.")]
        for models in ("single", "ensemble"):
            for name in crop_names:
                p = f"{models}.{name}"
                err = 100 * (1 - m[f"{p}.acc"])
                who = "single" if models == "single" else f"ensemble of {int(m['n_members'])}"
                lines.append(f"| {label} | {who} | {name} ({int(m[f'n_crops.{name}'])}) | {err:.2f} % | "
                             f"{err - base:+.2f} | {m[f'{p}.latency_x']:.2f}× | {m[f'{p}.memory_x']:.2f}× |")
    lines += ["", "Published references (single model):", "",
              "| reference | source | single crop → 10-crop | Δ error (points) |", "|---|---|---|---:|"]
    for r in REFERENCES:
        lines.append(f"| {r['name']} | {r['source']} | {r['single']:.2f} % → {r['ten']:.2f} % | "
                     f"{r['ten'] - r['single']:+.2f} |")
    return "\n".join(lines) + "\n"


def publish(metrics_files: Mapping[str, str | Path], path: str | Path = DEFAULT_PATH,
            command: str | None = None) -> Path:
    """Write the gain/cost section of ``docs/BENCHMARKS.md`` from benchmark ``metrics.json`` files.

    Args:
        metrics_files: label → path of a ``metrics.json`` written by :func:`run_benchmark`.
        path: the benchmarks markdown file.
        command: the command that produced the figures (defaults to this process's).
    """
    results = {label: json.loads(Path(p).read_text()) for label, p in metrics_files.items()}
    return write_section("ensemble-multicrop", gain_cost_markdown(results), command=command, path=path)


def face_crop_grid(embed_fn: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor, labels: torch.Tensor,
                   crop_sets: Mapping[str, Sequence[Crop]], size: Sequence[int],
                   score_fn: Callable[[torch.Tensor, torch.Tensor], Mapping[str, float]], *,
                   batch_size: int = 32, repeats: int = 5) -> dict[str, float]:
    """Score flip- and multi-crop-averaged embeddings of one encoder for every crop set.

    Args:
        embed_fn: the encoder, ``[N, C, h, w]`` → ``[N, D]`` (an ``nn.Module`` also gets its
            parameters counted in memory).
        images: ``[N, C, H, W]`` normalised face images at :func:`resize_for_crops` size.
        labels: ``[N]`` identity ids.
        crop_sets: name → crops; ``centre`` (the cost baseline) is added first if missing.
        size: (h, w) the encoder is fed.
        score_fn: embeddings ``[N, D]`` and labels → named scores, e.g. rank-1 and EER from
            ``cnnlab.face.evaluation.metrics``.

    Returns:
        Flat metrics ``<crops>.<score>``, ``<crops>.latency_ms``/``memory_mib`` and their
        ``_x`` multipliers relative to ``centre``.
    """
    crop_sets = dict(crop_sets) if "centre" in crop_sets else {"centre": CENTRE, **crop_sets}
    batch = images[torch.arange(batch_size) % len(images)]
    metrics: dict[str, float] = {}
    for name, crops in crop_sets.items():
        def fn(x, crops=crops):
            return multicrop_embed(embed_fn, x, crops, size)

        emb = crop_embeddings(embed_fn, images, crops, size, batch_size)
        metrics |= {f"{name}.{k}": float(v) for k, v in score_fn(emb, labels).items()}
        metrics |= {f"n_crops.{name}": len(crops), f"{name}.latency_ms": latency_ms(fn, batch, repeats),
                    f"{name}.memory_mib": (model_bytes(embed_fn) + peak_memory_bytes(fn, batch)) / MIB}
    add_multipliers(metrics, base="centre")
    return metrics


@torch.inference_mode()
def crop_embeddings(embed_fn: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor,
                    crops: Sequence[Crop], size: Sequence[int], batch_size: int = 32) -> torch.Tensor:
    """:func:`~cnnlab.evaluate.multicrop.multicrop_embed` of ``images`` in batches: ``[N, D]`` unit vectors."""
    return torch.cat([multicrop_embed(embed_fn, images[i:i + batch_size], crops, size)
                      for i in range(0, len(images), batch_size)])
