"""Stage ``train_encoder``: face identities → ``models/faces/<encoder>-<train_on>/{best,last}.ckpt, metrics.json``.

``face.train_on=ids`` (default) trains on the training people of the identity split; the
validation people choose the checkpoint. ``face.train_on=all`` trains on all people.
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from ._app import log, stage, tracker


@stage(config_name="faces")
def main(cfg: DictConfig) -> None:
    from ..face.train import fit_encoder
    from ..tasks.callbacks import MLflowMetrics
    from ..tasks.fit import is_launch_rank_zero

    if not is_launch_rank_zero():
        # A DDP worker (trainer=ddp): it trains on its own P×K batches; rank 0 publishes and records the run.
        fit_encoder(cfg)
        return
    f = cfg.face
    with tracker("train_encoder", cfg, dataset=f.dataset, model=f.encoder.name, train_on=f.train_on,
                 seed=cfg.seed) as t:
        metrics = fit_encoder(cfg, callbacks=[MLflowMetrics(t)])
        log.info("trained face encoder %s: %s", f.paths.run, metrics)
        t.log_metrics({k: v for k, v in metrics.items() if isinstance(v, (int, float))})
        t.log_artifact(Path(f.paths.run) / "metrics.json")


if __name__ == "__main__":
    main()
