"""Stage ``evaluate_faces``: test people's encodings + baselines → ``reports/faces/``.

Measured on the test people of the identity split, whom the encoder never saw: one-shot rank-1,
ROC AUC, EER, TAR at fixed FARs, open-set identification, beside raw pixels, Eigenfaces,
Fisherfaces and LBP (hyper-parameters chosen on the validation people).
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from ._app import done, log, stage, tracker


@stage(config_name="faces")
def main(cfg: DictConfig) -> None:
    from ..face.evaluation.heldout import flat_metrics, run_evaluation

    f = cfg.face
    if f.train_on != "ids":
        raise ValueError(f"evaluate_faces scores people the encoder never saw; face.train_on={f.train_on} "
                         f"trains on every person (use face.train_on=ids)")
    enc_dir, name = Path(f.paths.encodings), Path(f.paths.identity_split).name
    with tracker("evaluate_faces", cfg, dataset=name, model=f.encoder.name) as t:
        t.link_train_runs(Path(f.paths.encoder).parent)
        metrics = run_evaluation(enc_dir / f"{name}-test.npz", enc_dir / f"{name}-val.npz", f.paths.encoder,
                                 f.paths.identity_split, f.paths.reports,
                                 OmegaConf.to_container(f.evaluate, resolve=True))
        flat = flat_metrics(metrics)
        log.info("face metrics on held-out people %s: %s", metrics["split"]["test"],
                 {k: round(v, 4) for k, v in flat.items() if k.startswith("encoder_")})
        t.log_results(flat)
        t.log_artifact(f.paths.reports, "faces")
        done(t, f.paths.reports)


if __name__ == "__main__":
    main()
