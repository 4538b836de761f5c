"""Stage ``compare_faces``: every encoder's ``evaluate_faces`` report → ``reports/faces/comparison.{md,json}``.

``face.compare.encoders`` lists ``name: kind`` pairs (kind: scratch | pretrained | finetune);
``face.compare.only`` may pick a subset of them (the Snakemake config's ``face_encoders`` sets
it). The reports are read from ``reports/faces/<name>/details.json``.
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from ._app import done, log, stage, tracker


@stage(config_name="faces")
def main(cfg: DictConfig) -> None:
    from ..face.evaluation.compare import compare, write_comparison

    f = cfg.face
    root = Path(f.paths.comparison)
    encoders = dict(f.compare.encoders)
    if f.compare.get("only"):
        unknown = sorted(set(f.compare.only) - set(encoders))
        if unknown:
            raise KeyError(f"face.compare.only: {unknown} are not in face.compare.encoders {sorted(encoders)}")
        encoders = {name: encoders[name] for name in f.compare.only}
    reports = [root / name / "details.json" for name in encoders]
    missing = [str(p) for p in reports if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"face.compare.encoders: no evaluate_faces report at {missing} "
                                f"(run evaluate_faces with encoder=<name> first)")
    alignment = Path(f.paths.identity_split) / "alignment.json"
    with tracker("compare_faces", cfg, dataset=Path(f.paths.identity_split).name) as t:
        result = compare(reports, list(encoders.values()), alignment if alignment.is_file() else None,
                         f.paths.alignment_metrics, default=f.encoder.name)
        md, js = write_comparison(root, result)
        for r in result["rows"]:
            log.info("%-28s %-24s rank-1 %.3f  EER %.3f", r["group"], r["method"], r["rank1"], r["eer"])
        choice = result["default"]
        if choice["configured_is_best"] is False and f.encoder.name in encoders:
            log.warning("the configured default encoder %s is not the best on the validation people (%s): set "
                        "`encoder: %s` in conf/faces.yaml", f.encoder.name, choice["validation_best"],
                        choice["validation_best"])
        else:
            log.info("best on the validation people: %s (configured default: %s)", choice["validation_best"],
                     f.encoder.name)
        t.set_tags({"validation_best_encoder": choice["validation_best"]})
        t.log_results({f"{r['key']}_{k}": r[k] for r in result["rows"] for k in ("rank1", "eer")})
        t.log_artifact(md, "faces")
        t.log_artifact(js, "faces")
        done(t, md)


if __name__ == "__main__":
    main()
