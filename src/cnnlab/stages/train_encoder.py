"""Stage ``train_encoder``: face identities → ``models/faces/<encoder>-<train_on>/{best,last}.ckpt, metrics.json``.

``face.train_on=ids`` (default) trains on the training people of the identity split; the
validation people choose the checkpoint. ``face.train_on=all`` trains on all people.
"""

from __future__ import annotations

from omegaconf import DictConfig

from ._app import done_training, log, stage, tracker


@stage(config_name="faces")
def main(cfg: DictConfig) -> None:
    from ..face.training.train import fit_encoder
    from ..tasks.callbacks import MLflowMetrics
    from ..tasks.config_check import check_training_config
    from ..tasks.fit import is_launch_rank_zero

    check_training_config(cfg)  # a bad value is named by its key before any work
    if not is_launch_rank_zero():
        # A DDP worker (trainer=ddp): it trains on its own P×K batches; rank 0 publishes and records the run.
        fit_encoder(cfg)
        return
    f = cfg.face
    with tracker("train_encoder", cfg, dataset=f.dataset, model=f.encoder.name, train_on=f.train_on,
                 seed=cfg.seed) as t:
        metrics = fit_encoder(cfg, callbacks=[MLflowMetrics(t)])
        log.info("trained face encoder %s: %s", f.paths.run, metrics)
        t.log_results({k: v for k, v in metrics.items() if isinstance(v, (int, float))})
        done_training(t, f.paths.run)


if __name__ == "__main__":
    main()
