"""Stage ``benchmark``: N seeds' checkpoints → ``reports/benchmark/<ds>/{table.md, metrics.json}``.

Single model vs ensemble × centre crop vs 10-crop vs the configured crop sets (``conf/benchmark``),
with latency and memory beside each accuracy.
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from ._app import done, log, stage, tracker


@stage
def main(cfg: DictConfig) -> None:
    import torch

    from ..evaluate.benchmark import run_benchmark
    from ..evaluate.multicrop import parse_crop_set

    b = cfg.benchmark
    torch.set_num_threads(b.threads)
    ckpts = [Path(b.models_dir) / f"seed{s}" / "best.ckpt" for s in b.seeds]
    crop_sets = {name: parse_crop_set(spec) for name, spec in OmegaConf.to_container(b.crop_sets).items()}
    with tracker("benchmark", cfg, model=cfg.model.name, seeds=",".join(map(str, b.seeds))) as t:
        t.link_train_runs([c.parent for c in ckpts])
        metrics = run_benchmark(ckpts, cfg.paths.prepared, crop_sets, b.out, resize=b.resize,
                                batch_size=b.batch_size, repeats=b.repeats, split=b.split)
        log.info("benchmarked %d checkpoints into %s", len(ckpts), b.out)
        t.log_results(metrics)
        t.log_artifact(b.out, "benchmark")
        done(t, b.out)


if __name__ == "__main__":
    main()
