"""Ensembles × multi-crop for the face encoder: rank-1 and EER gained against latency and memory paid.

The face half of the benchmark (issue 7), beside :mod:`cnnlab.evaluate.benchmark` for classifiers.
Encoders trained by ``train_encoder`` on the training people of an identity split (one per seed)
embed the split's *test* people, whom none of them saw. Nothing is chosen on those people: the
crop sets and the ensemble rule are fixed in the config beforehand.

* **Crops** (:func:`~cnnlab.evaluate.multicrop.multicrop_embed`): the L2-normalised mean of the
  L2-normalised embeddings of every crop; ``flip`` is the plain image and its mirror.
* **Ensemble of N encoders** (:class:`EmbeddingEnsemble`, ``concat``): the members' unit
  embeddings concatenated and scaled by 1/√N, so the vector has unit length again and the squared
  distance of two faces is the *mean of the members' squared distances*: the ensemble averages
  what each member measures, as the classifier ensemble averages probabilities. Averaging the
  vectors themselves (``mean``, scored beside for comparison) would add up coordinates that
  independently trained encoders do not share, for the same reason that their weights are not
  averaged. The ensemble is an encoder like any other, so crops average its output.
* **Scores** (:mod:`cnnlab.face.evaluation.metrics`): one-shot rank-1 averaged exactly over every choice of
  enrolled image, and the verification EER over all pairs of test images.
* **Costs**: as for classifiers (:func:`~cnnlab.evaluate.benchmark.face_crop_grid`): latency per
  image and memory, also as multipliers of the single encoder on the centre crop.
"""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torchvision.transforms import v2

from ...bench.report import DEFAULT_PATH, write_section
from ...data.images import load_image
from ..models.embedder import load_encoder
from ..gallery.encodings import encoder_input, image_transform
from .heldout import load_splits
from .metrics import one_shot_rank1, verification_metrics, verification_pairs
from ...evaluate.benchmark import (REFERENCES, add_multipliers, cost_cells, crop_embeddings, face_crop_grid,
                        write_outputs)
from ...evaluate.ensemble import check_compatible
from ...evaluate.multicrop import CENTRE, Crop, resize_for_crops

# What encoders must share to embed the same image tensors into comparable vectors.
ENCODER_KEYS = ("embedding_dim", "input_size", "in_chans", "normalization")
COMBINES = ("concat", "mean")
BASE = "single.centre"


class EmbeddingEnsemble(nn.Module):
    """N face encoders as one: unit embeddings concatenated / √N (``concat``) or averaged (``mean``).

    Both outputs have unit length. With ``concat``, ‖a − b‖² is the mean of the members'
    squared distances; with ``mean``, the members' vectors are averaged and re-normalised.

    Args:
        members: encoders returning ``[N, D]`` embeddings, in eval mode.
        combine: ``"concat"`` or ``"mean"``.
    """

    def __init__(self, members: Sequence[nn.Module], combine: str = "concat"):
        super().__init__()
        if not members:
            raise ValueError("an ensemble needs at least one encoder")
        if combine not in COMBINES:
            raise ValueError(f"combine must be one of {COMBINES}, got {combine!r}")
        self.members = nn.ModuleList(members)
        self.combine = combine

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        embs = [F.normalize(m(x), dim=1) for m in self.members]
        if self.combine == "concat":
            return torch.cat(embs, dim=1) / math.sqrt(len(embs))
        return F.normalize(torch.stack(embs).mean(0), dim=1)


def encoder_checkpoints(run_dir: str | Path, seeds: Sequence[int]) -> list[Path]:
    """The ``best.ckpt`` of each seed's encoder.

    Seed 0 is the default encoder, ``<run_dir>/best.ckpt`` (``train_encoder`` runs with
    ``seed=0``); seed k > 0 is ``<run_dir>-seed<k>/best.ckpt`` (Snakemake rule ``train_encoder_seed``).
    """
    run_dir = Path(run_dir)
    return [run_dir / "best.ckpt" if s == 0 else run_dir.with_name(f"{run_dir.name}-seed{s}") / "best.ckpt"
            for s in seeds]


def load_face_encoders(paths: Sequence[str | Path]) -> tuple[list[nn.Module], list[dict[str, Any]]]:
    """Load face-encoder checkpoints that can form an ensemble.

    Returns:
        ``(encoders in eval mode, their hyper-parameters)``, in the order of ``paths``.

    Raises:
        ValueError: no paths, a file that is not a face-encoder checkpoint, or encoders that
            disagree on embedding size, input size, channels or normalisation (the message names
            the key and both files).
        FileNotFoundError: a checkpoint is missing.
    """
    if not paths:
        raise ValueError("the face benchmark needs at least one encoder checkpoint")
    loaded = [load_encoder(p) for p in paths]
    check_compatible([hp for _, hp in loaded], paths, ENCODER_KEYS, what="face encoders")
    return [m for m, _ in loaded], [hp for _, hp in loaded]


def load_test_faces(prepared: str | Path, hp: Mapping[str, Any], resize: float) -> tuple[torch.Tensor, np.ndarray]:
    """The test people of an identity split as one normalised ``[N, C, H, W]`` tensor.

    Images are converted to the encoder's mode, resized to ``resize × input_size`` (as
    ``encode_faces`` resizes them to ``input_size``) and normalised with its statistics.

    Returns:
        ``(images, person label of each image)``.
    """
    test = load_splits(prepared)["test"]
    mode, size, norm = encoder_input(dict(hp))
    tf = image_transform(resize_for_crops(size, resize), norm)
    images = torch.stack([tf(v2.functional.pil_to_tensor(load_image(p, mode))) for p in test.paths])
    return images, test.labels


def face_scores(emb: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """One-shot rank-1 (exact average over enrolled images) and verification EER of embeddings."""
    e, y = emb.float().cpu().numpy(), labels.cpu().numpy()
    return {"rank1": one_shot_rank1(e, y), "eer": verification_metrics(*verification_pairs(e, y))["eer"]}


def _member_spread(members: Sequence[nn.Module], images: torch.Tensor, labels: torch.Tensor,
                   crop_sets: Mapping[str, Sequence[Crop]], size: Sequence[int], batch_size: int) -> dict[str, float]:
    """Mean and sample standard deviation over the members of each crop set's scores."""
    out: dict[str, float] = {}
    for name, crops in crop_sets.items():
        scores = [face_scores(crop_embeddings(m, images, crops, size, batch_size), labels) for m in members]
        for key in ("rank1", "eer"):
            values = [s[key] for s in scores]
            out[f"single.{name}.{key}_mean"] = statistics.fmean(values)
            out[f"single.{name}.{key}_std"] = statistics.stdev(values) if len(values) > 1 else 0.0
    return out


def run_face_benchmark(ckpts: Sequence[str | Path], prepared: str | Path, crop_sets: Mapping[str, Sequence[Crop]],
                       out_dir: str | Path, *, resize: float = 1.143, batch_size: int = 32,
                       repeats: int = 5) -> dict[str, float]:
    """Measure the {single, ensemble (concat), ensemble (mean)} × crop-set grid on the test people.

    Args:
        ckpts: face-encoder checkpoints (one per seed); the first is "the single encoder".
        prepared: the prepared identity split; its test people are scored.
        crop_sets: name → crops; ``centre`` (the cost baseline) is added first if missing.
        out_dir: ``table.md`` and ``metrics.json`` are written here, atomically as a whole.
        resize: test images are resized to ``resize × input_size`` before cropping.
        batch_size: images per forward pass, also the batch timed for the costs.
        repeats: timed calls per latency (the median is kept).

    Returns:
        The flat metrics of ``metrics.json``: ``<models>.<crops>.rank1``/``.eer``, their
        ``.latency_ms``/``.memory_mib`` and ``_x`` multipliers, and ``single.<crops>.rank1_mean``/``_std``.

    Raises:
        ValueError: incompatible encoders, or an encoder that was trained on a test person.
    """
    members, hps = load_face_encoders(ckpts)
    images, people = load_test_faces(prepared, hps[0], resize)
    for path, hp in zip(ckpts, hps):
        seen = sorted(set(hp.get("identities") or ()) & set(people.tolist()))
        if seen:
            raise ValueError(f"{path} was trained on test people {seen}: the face benchmark scores people no "
                             f"encoder saw (train it with face.train_on=ids)")
    labels = torch.as_tensor(np.unique(people, return_inverse=True)[1])
    crop_sets = dict(crop_sets) if "centre" in crop_sets else {"centre": CENTRE, **crop_sets}
    size = hps[0]["input_size"]
    metrics: dict[str, float] = {
        "n_members": len(members), "n_test": len(people), "n_people": len(set(people)),
        "embedding_dim": hps[0]["embedding_dim"], "batch_size": batch_size, "resize": resize,
        "threads": torch.get_num_threads(),
    }
    models = {"single": members[0], "ensemble": EmbeddingEnsemble(members, "concat").eval(),
              "ensemble_mean": EmbeddingEnsemble(members, "mean").eval()}
    for model, fn in models.items():
        grid = face_crop_grid(fn, images, labels, crop_sets, size, face_scores, batch_size=batch_size, repeats=repeats)
        metrics |= {k if k.startswith("n_crops.") else f"{model}.{k}": v for k, v in grid.items()}
    metrics |= _member_spread(members, images, labels, crop_sets, size, batch_size)
    add_multipliers(metrics, base=BASE)
    caption = (f"{Path(prepared).name} / test: {len(people)} images of {metrics['n_people']} people no encoder saw, "
               f"resized to {'×'.join(map(str, images.shape[-2:]))}, crops of {'×'.join(map(str, size))}; "
               f"{hps[0]['arch']} encoders, single = {Path(ckpts[0]).parent.name}. Latency: median of {repeats} "
               f"runs of a batch of {batch_size} on {metrics['threads']} CPU thread(s), per image. Memory: "
               f"parameters + peak live tensors for one batch.")
    write_outputs(out_dir, metrics, format_face_table(metrics, list(crop_sets), caption))
    return metrics


def format_face_table(metrics: Mapping[str, float], crop_names: Sequence[str], caption: str = "") -> str:
    """The face grid as a markdown table (one row per models × crops cell)."""
    n = int(metrics["n_members"])
    lines = [caption, "", "| models | crops | n crops | rank-1 | EER | latency (ms/image) | latency × | "
             "memory (MiB) | memory × |", "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name in crop_names:
        k = int(metrics[f"n_crops.{name}"])
        s = f"single.{name}"
        lines.append(f"| single (first) | {name} | {k} | {100 * metrics[s + '.rank1']:.2f} % | "
                     f"{100 * metrics[s + '.eer']:.2f} % | {cost_cells(metrics, s)} |")
        lines.append(f"| single, mean ± std of {n} | {name} | {k} | {100 * metrics[s + '.rank1_mean']:.2f} ± "
                     f"{100 * metrics[s + '.rank1_std']:.2f} % | {100 * metrics[s + '.eer_mean']:.2f} ± "
                     f"{100 * metrics[s + '.eer_std']:.2f} % | | | | |")
        for model, how in (("ensemble", "concatenated"), ("ensemble_mean", "mean vector")):
            p = f"{model}.{name}"
            lines.append(f"| ensemble of {n} ({how}) | {name} | {k} | {100 * metrics[p + '.rank1']:.2f} % | "
                         f"{100 * metrics[p + '.eer']:.2f} % | {cost_cells(metrics, p)} |")
    return "\n".join(lines).lstrip() + "\n"


def face_gain_cost_markdown(m: Mapping[str, float], label: str) -> str:
    """Gain/cost rows of one face benchmark (``metrics.json``) beside the published references.

    Args:
        m: the metrics written by :func:`run_face_benchmark`.
        label: the data set and encoder, e.g. ``"ORL faces (4 test people), course39"``.
    """
    r0, e0 = 100 * m[f"{BASE}.rank1"], 100 * m[f"{BASE}.eer"]
    lines = ["| data set | models | crops | rank-1 | Δ rank-1 (points) | EER | Δ EER (points) | latency × | "
             "memory × |", "|---|---|---|---:|---:|---:|---:|---:|---:|"]
    crop_names = [k.split(".", 1)[1] for k in m if k.startswith("n_crops.")]
    who = {"single": "single", "ensemble": f"ensemble of {int(m['n_members'])} (concatenated)",
           "ensemble_mean": f"ensemble of {int(m['n_members'])} (mean vector)"}
    for model, name in who.items():
        for crops in crop_names:
            p = f"{model}.{crops}"
            r, e = 100 * m[f"{p}.rank1"], 100 * m[f"{p}.eer"]
            lines.append(f"| {label} | {name} | {crops} ({int(m[f'n_crops.{crops}'])}) | {r:.2f} % | "
                         f"{r - r0:+.2f} | {e:.2f} % | {e - e0:+.2f} | {m[f'{p}.latency_x']:.2f}× | "
                         f"{m[f'{p}.memory_x']:.2f}× |")
    lines += ["", "Published references (single model, classification):", "",
              "| reference | source | single crop → 10-crop | Δ error (points) |", "|---|---|---|---:|"]
    lines += [f"| {r['name']} | {r['source']} | {r['single']:.2f} % → {r['ten']:.2f} % | "
              f"{r['ten'] - r['single']:+.2f} |" for r in REFERENCES]
    return "\n".join(lines) + "\n"


def publish_faces(out_dir: str | Path, label: str, notes: str = "", command: str | None = None,
                  path: str | Path = DEFAULT_PATH) -> Path:
    """Write the ``ensemble-faces`` section of ``docs/BENCHMARKS.md`` from a face benchmark's outputs.

    Args:
        out_dir: the folder :func:`run_face_benchmark` wrote (``table.md``, ``metrics.json``).
        label: the data set and encoder, for the gain/cost rows.
        notes: markdown placed under the tables (what the figures say; measured facts only).
        command: the command that produced the figures (defaults to this process's).
        path: the benchmarks markdown file.
    """
    out_dir = Path(out_dir)
    m = json.loads((out_dir / "metrics.json").read_text())
    body = ["## Ensembles × multi-crop on faces (issue 7)", "",
            f"From `{out_dir / 'table.md'}` (stage `benchmark_faces`): one-shot rank-1 (exact average over "
            "every choice of enrolled image) and EER on the test people of the identity split, whom no encoder "
            "saw; every choice was fixed before these people were scored. Ensemble: the members' unit "
            "embeddings concatenated / √N (squared distances averaged); `mean vector`: averaged and "
            "re-normalised, for comparison.", "", (out_dir / "table.md").read_text().rstrip(), "",
            "Gain and cost against the single encoder on the centre crop:", "",
            face_gain_cost_markdown(m, label).rstrip()]
    if notes:
        body += ["", notes.rstrip()]
    return write_section("ensemble-faces", "\n".join(body), command=command, path=path)
