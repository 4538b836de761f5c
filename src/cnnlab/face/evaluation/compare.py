"""One comparison table of every face method on the held-out people (``reports/faces/comparison.md``).

Rows: the hand-engineered baselines, the encoders trained from scratch, dlib's face ResNet as it
is (weights imported by cnnlab, descriptors equal to dlib's) and dlib fine-tuned by cnnlab's triplet
training. Each encoder's numbers come from its own ``evaluate_faces`` run
(``reports/faces/<encoder>/details.json``); all of them must score the same test people.

The comparison also names the encoder users should get by default: the best on the *validation*
people (:func:`validation_best`; the test people never choose anything), and whether the configured
default (``conf/faces.yaml``'s ``encoder``, what ``cnnlab face`` and the face stages use) is it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

from ...io import atomic_path, write_json

BASELINE_NAMES = {"raw_pixels": "raw pixels", "eigenfaces": "Eigenfaces (PCA)",
                  "fisherfaces": "Fisherfaces (PCA+LDA)", "lbp": "LBP histograms"}
KIND_NAMES = {"scratch": "trained from scratch", "pretrained": "dlib as-is (imported weights)",
              "finetune": "dlib imported + fine-tuned"}


# Equal validation scores favour the encoder that needs no training run of its own.
KIND_ORDER = {"pretrained": 0, "finetune": 1, "scratch": 2}


def _row(key: str, group: str, method: str, test: dict[str, Any], detail: str,
         val: dict[str, Any] | None = None) -> dict[str, Any]:
    val = val or {}
    return {"key": key, "group": group, "method": method, "rank1": test["rank1"], "eer": test["eer"],
            "tar_at_far_1pct": test.get("tar_at_far_1pct"), "ms_per_face": test.get("ms_per_face"),
            "val_rank1": val.get("rank1"), "val_eer": val.get("eer"),
            "val_tar_at_far_1pct": val.get("tar_at_far_1pct"),
            "detail": detail}


def validation_key(val: dict[str, Any], kind: str) -> tuple:
    """Sort key of an encoder on the validation people: lowest EER, then highest rank-1, then highest
    TAR at FAR 1 %, then the simpler kind (pretrained as is < fine-tuned < from scratch)."""
    return (round(val["eer"], 6), -round(val["rank1"], 6), -round(val.get("tar_at_far_1pct") or 0.0, 6),
            KIND_ORDER.get(kind, len(KIND_ORDER)))


def validation_best(encoders: dict[str, tuple[dict[str, Any], str]]) -> str:
    """The encoder best on the validation people.

    Args:
        encoders: ``{name: (validation metrics, kind)}``; metrics hold ``eer``, ``rank1`` and
            optionally ``tar_at_far_1pct``.

    Raises:
        ValueError: no encoder, or one without validation metrics.
    """
    if not encoders:
        raise ValueError("validation_best: no encoders to choose from")
    missing = [n for n, (val, _) in encoders.items() if not val or "eer" not in val]
    if missing:
        raise ValueError(f"validation_best: no validation metrics for {missing} (evaluate_faces with val encodings)")
    return min(encoders, key=lambda n: validation_key(*encoders[n]))


def compare(reports: Sequence[str | Path], kinds: Sequence[str], alignment: str | Path | None = None,
            timings: str | Path | None = None, default: str | None = None) -> dict[str, Any]:
    """Gather the rows from ``evaluate_faces`` reports, and the validation-best encoder.

    Args:
        reports: ``details.json`` of each encoder's ``evaluate_faces`` run.
        kinds: each encoder's kind (``scratch``, ``pretrained`` or ``finetune``), same order.
        alignment: ``alignment.json`` of the aligned identity split (detection rate).
        timings: the ``align_faces`` metrics file with its ms per face (read if it exists).
        default: the configured default encoder's name (recorded beside the choice).

    Raises:
        ValueError: no reports, lengths differ, or two reports scored different test people.
    """
    if not reports or len(reports) != len(kinds):
        raise ValueError(f"compare_faces needs one kind per report; got {len(reports)} reports, {len(kinds)} kinds")
    loaded = [(Path(p), json.loads(Path(p).read_text())) for p in reports]
    first_path, first = loaded[0]
    for path, m in loaded[1:]:
        if m["split"] != first["split"]:
            raise ValueError(f"{path} scored people {m['split']['test']}, {first_path} scored "
                             f"{first['split']['test']}: evaluate every encoder on the same split")
    rows = [_row(name, "hand-engineered", BASELINE_NAMES.get(name, name), b["test"],
                 ", ".join(f"{k}={v}" for k, v in b["params"].items()))
            for name, b in next((m["baselines"] for _, m in loaded if m["baselines"]), {}).items()]
    candidates = {}
    for (path, m), kind in zip(loaded, kinds):
        enc = m["encoder"]
        rows.append(_row(enc["name"], KIND_NAMES.get(kind, kind), enc["name"], enc["test"],
                         f"{enc['params']['arch']} at {'×'.join(map(str, enc['params']['input_size']))}",
                         enc.get("val")))
        candidates[enc["name"]] = (enc.get("val") or {}, kind)
    align = json.loads(Path(alignment).read_text()) if alignment else None
    if align is not None and timings is not None and Path(timings).is_file():
        align["ms_per_face"] = json.loads(Path(timings).read_text())["ms_per_face"]
    best = validation_best(candidates)
    return {"split": first["split"], "rows": rows, "alignment": align,
            "default": {"validation_best": best, "configured": default,
                        # None: no default given, or it was not among the compared encoders
                        "configured_is_best": default == best if default in candidates else None}}


def _fmt(v: Any, spec: str) -> str:
    return "–" if v is None else format(v, spec)


def render(result: dict[str, Any]) -> str:
    """The markdown of ``comparison.md``."""
    split, align = result["split"], result["alignment"]
    n_test = len(split["test"])
    lines = [
        "# Faces: every method on the same held-out people",
        "",
        f"Identity split of the embedded ORL faces: {len(split['train'])} training people, validation people "
        f"{', '.join(split['val'])} (checkpoints and baseline hyper-parameters chosen on them), test people "
        f"{', '.join(split['test'])}, scored once. One-shot rank-1 averaged over every choice of enrolled image; "
        f"EER and TAR at FAR 1 % over all test pairs. With {n_test} test people the figures are coarse: one "
        "wrong probe moves rank-1 by about 1/36.",
        "",
        "*ms / face*: CPU time to encode one aligned face image (decode, resize, normalise, forward; batches of "
        "32) for the encoders, and the projection alone for the baselines (their images already loaded).",
    ]
    if align and "ms_per_face" in align:
        lines += ["", f"Every method sees the same aligned crops: detector `{align['detector']}` found a face in "
                      f"{align['detected']}/{align['images']} images; detection {align['ms_per_face']['detection']:.1f} "
                      f"ms and 5-point alignment {align['ms_per_face']['alignment']:.1f} ms per face, on top of "
                      "encoding."]
    elif align:
        lines += ["", f"Every method sees the same aligned crops: detector `{align['detector']}` found a face in "
                      f"{align['detected']}/{align['images']} images."]
    choice = result.get("default")
    if choice:
        lines += ["", f"**Default encoder.** Best on the validation people (lowest EER, then rank-1, then TAR @ "
                      f"FAR 1 %; ties go to the encoder that needs no training): `{choice['validation_best']}`. "
                      f"Configured default (`conf/faces.yaml` `encoder`, used by the face stages and "
                      f"`cnnlab face`): `{choice['configured']}`"
                      + (" (not compared in this run)" if choice["configured_is_best"] is None else "")
                      + ("" if choice["configured_is_best"] in (None, True) else
                         " — **not the validation-best one**: set `encoder: "
                         f"{choice['validation_best']}` in conf/faces.yaml") + "."]
    lines += ["", "| group | method | rank-1 | EER | TAR @ FAR 1 % | ms / face | val rank-1 | val EER | detail |",
              "|---|---|---:|---:|---:|---:|---:|---:|---|"]
    for r in result["rows"]:
        lines.append(f"| {r['group']} | {r['method']} | {r['rank1']:.3f} | {r['eer']:.3f} | "
                     f"{_fmt(r['tar_at_far_1pct'], '.3f')} | {_fmt(r['ms_per_face'], '.2f')} | "
                     f"{_fmt(r.get('val_rank1'), '.3f')} | {_fmt(r.get('val_eer'), '.3f')} | {r['detail']} |")
    return "\n".join(lines) + "\n"


def write_comparison(out_dir: str | Path, result: dict[str, Any]) -> tuple[Path, Path]:
    """Write ``comparison.md`` and ``comparison.json`` (DVC metrics) atomically."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    md = out_dir / "comparison.md"
    with atomic_path(md) as tmp:
        Path(tmp).write_text(render(result))
    js = write_json(out_dir / "comparison.json", result)
    return md, js
