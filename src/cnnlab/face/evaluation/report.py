"""The ``evaluate_faces`` report: a comparison table (markdown + JSON), a ROC plot, distance histograms."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ...io import atomic_path  # noqa: E402
from .metrics import far_key, roc  # noqa: E402

if TYPE_CHECKING:
    from .heldout import MethodResult

LABELS = {"encoder": "learned encoder", "raw_pixels": "raw pixels", "eigenfaces": "Eigenfaces (PCA)",
          "fisherfaces": "Fisherfaces (PCA+LDA)", "lbp": "LBP histograms"}


def _label(r: "MethodResult", encoder_name: str) -> str:
    return f"{LABELS[r.name]} ({encoder_name})" if r.name == "encoder" else LABELS[r.name]


def roc_png(results: Sequence["MethodResult"], path: Path, title: str, encoder_name: str) -> Path:
    """TAR against FAR (log axis) for every method, AUC and EER in the legend."""
    fig, ax = plt.subplots(figsize=(6.4, 4.8), dpi=120)
    floor = 1.0 / max(int((~results[0].same).sum()), 1)
    for r in results:
        fpr, tpr, _ = roc(r.distances, r.same)
        ax.step(np.maximum(fpr, floor / 2), tpr, where="post", lw=2 if r.name == "encoder" else 1.2,
                label=f"{_label(r, encoder_name)}: AUC {r.test['auc']:.3f}, EER {r.test['eer']:.3f}")
    ax.set_xscale("log")
    ax.set_xlim(floor / 2, 1.0)
    ax.set_ylim(0.0, 1.02)
    ax.set_xlabel("false accept rate (impostor pairs accepted)")
    ax.set_ylabel("true accept rate (genuine pairs accepted)")
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def roc_csv(results: Sequence["MethodResult"], path: Path, encoder_name: str) -> Path:
    """The ROC curves as data: ``method, far, tar, threshold`` rows (a DVC plot with x=far, y=tar)."""
    import csv

    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["method", "far", "tar", "threshold"])
        for r in results:
            fpr, tpr, thr = roc(r.distances, r.same)
            for f, t, h in zip(fpr, tpr, thr):
                w.writerow([_label(r, encoder_name), f"{f:.6g}", f"{t:.6g}", f"{h:.6g}"])
    return path


def distances_png(results: Sequence["MethodResult"], path: Path, title: str, encoder_name: str,
                  tau: float | None = None) -> Path:
    """One panel per method: histograms of same-person and different-people pair distances."""
    cols = min(3, len(results))  # an encoder without baselines: one panel, not two thirds blank
    rows = (len(results) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(max(4.2 * cols, 6.4), 3.3 * rows + 0.4), dpi=110, squeeze=False)
    for ax in axes.flat[len(results):]:
        ax.axis("off")
    for ax, r in zip(axes.flat, results):
        bins = np.linspace(0.0, float(r.distances.max()) * 1.02 or 1.0, 40)
        ax.hist(r.distances[~r.same], bins=bins, density=True, alpha=0.55, color="tab:red",
                label=f"different people ({int((~r.same).sum())} pairs)")
        ax.hist(r.distances[r.same], bins=bins, density=True, alpha=0.55, color="tab:green",
                label=f"same person ({int(r.same.sum())} pairs)")
        if r.name == "encoder" and tau is not None:
            ax.axvline(tau, color="k", ls="--", lw=1, label=f"calibrated τ = {tau:.3f}")
        ax.set_title(_label(r, encoder_name), fontsize=9)
        ax.set_xlabel("squared Euclidean distance")
        ax.set_ylabel("density")
        ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=10, wrap=True)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def _params(p: dict[str, Any]) -> str:
    return ", ".join(f"{k}={'×'.join(map(str, v)) if isinstance(v, list) else v}" for k, v in p.items()) or "–"


def provenance(hp: dict[str, Any], n_train: int) -> str:
    """How the encoder of a checkpoint's hyper-parameters came to be, in a few words for the report."""
    if hp.get("source") and not hp.get("identities"):
        return f"a pretrained encoder ({hp['source']}) imported as is, not trained here"
    if hp.get("init"):
        return f"fine-tuned (strategy {hp.get('strategy', 'full')}) on {n_train} training people from {hp['init']}"
    return f"trained on {n_train} people"


def markdown(results: Sequence["MethodResult"], split: dict[str, list[str]], fars: Sequence[float],
             open_set_far: float, encoder_name: str, calibration: dict | None, origin: str | None = None) -> str:
    """The report: the split, one comparison table, and how the calibrated τ fares on test pairs.

    Args:
        origin: how the encoder was made (:func:`provenance`); default "trained on <n> people".
    """
    t = results[0].test
    far_cols = [f"TAR @ FAR {f * 100:g}%" for f in fars]
    origin = origin or f"trained on {len(split['train'])} people"
    lines = [
        "# Face verification and identification on held-out people", "",
        f"Encoder `{encoder_name}`: {origin}. Identity split: {len(split['train'])} training people (the "
        f"baselines are fitted on them), checkpoint and baseline hyper-parameters "
        f"chosen on {len(split['val'])} validation people ({', '.join(split['val'])}), scored once on "
        f"{len(split['test'])} test people ({', '.join(split['test'])}): {t['n_images']} images, "
        f"{t['n_genuine']} same-person and {t['n_impostor']} different-people pairs.", "",
        "One-shot rank-1: enrol one image per person, probe with the rest, exact average over every choice "
        f"of enrolled image. Open-set DIR: half the people enrolled, rate of correct identifications "
        f"within the τ that accepts {open_set_far * 100:g}% of unknown people, over 10 splits.", "",
        "| method | rank-1 | AUC | EER | " + " | ".join(far_cols) + f" | DIR @ FAR {open_set_far * 100:g}% "
        "| val EER | chosen on val |",
        "|---|---:|---:|---:|" + "---:|" * len(fars) + "---:|---:|---|",
    ]
    for r in results:
        m = r.test
        tars = " | ".join(f"{m[f'tar_at_far_{far_key(f)}']:.3f}" for f in fars)
        val_eer = f"{r.val['eer']:.3f}" if r.val else "–"
        lines.append(f"| {_label(r, encoder_name)} | {m['rank1']:.3f} | {m['auc']:.3f} | {m['eer']:.3f} | {tars} "
                     f"| {m['open_set_dir']:.3f} | {val_eer} | {_params(r.params)} |")
    lines += ["", f"With {t['n_impostor']} impostor pairs, a FAR below {1 / t['n_impostor']:.4f} can only be met "
              "by accepting none of them.", ""]
    if calibration:
        lines += [f"Threshold calibrated on the validation pairs (`calibrate`): τ = {calibration['tau']:.4f} for a "
                  f"target FAR of {calibration['target_far'] * 100:g}% (FAR {calibration['far']:.4f} on val). "
                  f"On the test pairs it gives FAR {calibration['test_far']:.4f} and TAR "
                  f"{calibration['test_tar']:.3f}.", ""]
    lines += ["![ROC](roc.png)", "", "![distances](distances.png)", ""]
    return "\n".join(lines)


def write_report(out: str | Path, results: Sequence["MethodResult"], metrics: dict[str, Any], split: dict,
                 ecfg: dict[str, Any], encoder_name: str, calibration: dict | None, origin: str | None = None) -> Path:
    """Write ``details.json`` (everything), ``metrics.json`` (:func:`encoder_headline`), ``report.md``, ``roc.png`` (+ its
    data ``roc.csv``) and ``distances.png`` into ``out`` atomically.

    Args:
        origin: how the encoder was made (:func:`provenance`), for the report's first line.
    """
    import json

    title = f"held-out people {', '.join(split['test'])} (never seen in training)"
    with atomic_path(out) as tmp:
        tmp.mkdir()
        roc_png(results, tmp / "roc.png", f"Verification ROC, {title}", encoder_name)
        roc_csv(results, tmp / "roc.csv", encoder_name)
        distances_png(results, tmp / "distances.png", f"Pair distances, {title}", encoder_name,
                      calibration["tau"] if calibration else None)
        (tmp / "report.md").write_text(markdown(results, split, ecfg["fars"], ecfg["open_set_far"], encoder_name,
                                                calibration, origin))
        (tmp / "details.json").write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
        (tmp / "metrics.json").write_text(json.dumps(encoder_headline(metrics), indent=2, sort_keys=True) + "\n")
    return Path(out)


def encoder_headline(metrics: dict[str, Any]) -> dict[str, float]:
    """What ``dvc metrics show`` lists for an encoder: its numeric test metrics and, when calibrated,
    its τ with the test FAR/TAR there. Split, checkpoint, hash, parameters and the baselines stay in
    ``details.json``."""
    out = {k: v for k, v in metrics["encoder"]["test"].items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    if metrics.get("calibration"):
        out |= {f"calibrated_{k}": metrics["calibration"][k] for k in ("tau", "test_far", "test_tar")}
    return out
