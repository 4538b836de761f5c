"""Stage ``finetune``: a source network + a few images per target class → ``finetune.out``.

``python -m cnnlab.stages.finetune data=<target> model=<arch> finetune=<strategy>`` writes
``models/<target>/<arch>-ft-<strategy>/shots<k>/seed<n>/{best.ckpt,metrics.json}``. Strategies:
head, partial, full, gradual, and scratch (the baseline without a source).
"""

from __future__ import annotations

from omegaconf import DictConfig

from ._app import done_training, log, stage, tracker


@stage
def main(cfg: DictConfig) -> None:
    from ..tasks.callbacks import MLflowMetrics
    from ..tasks.config_check import check_training_config
    from ..tasks.finetune import finetune

    check_training_config(cfg)  # a bad value is named by its key before any work
    ft = cfg.get("finetune")
    if ft is None:
        raise ValueError("no fine-tuning strategy chosen: pass finetune=head|partial|full|gradual|scratch")
    with tracker("finetune", cfg, model=cfg.model.name, strategy=ft.strategy, shots=ft.shots, seed=cfg.seed) as t:
        metrics = finetune(cfg, callbacks=[MLflowMetrics(t)])
        log.info("fine-tuned %s: %s", ft.out, metrics)
        t.log_results({k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)})
        done_training(t, ft.out)


if __name__ == "__main__":
    main()
