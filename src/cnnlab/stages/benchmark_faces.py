"""Stage ``benchmark_faces``: N seeds' face encoders → ``reports/benchmark/<identity split>/``.

Single encoder vs ensemble × centre crop vs flip vs 10-crop vs the configured crop sets
(``benchmark.faces``), scored by one-shot rank-1 and EER on the test people of the identity
split, with latency and memory beside each score. Writes ``table.md`` and ``metrics.json``.
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from ._app import done, log, stage, tracker


@stage(config_name="faces")
def main(cfg: DictConfig) -> None:
    import torch

    from ..face.evaluation.benchmark import encoder_checkpoints, run_face_benchmark
    from ..evaluate.multicrop import parse_crop_set

    f, b = cfg.face, cfg.benchmark
    if f.train_on != "ids":
        raise ValueError(f"benchmark_faces scores people the encoders never saw; face.train_on={f.train_on} "
                         f"trains on every person (use face.train_on=ids)")
    torch.set_num_threads(b.threads)
    ckpts = encoder_checkpoints(f.paths.run, b.faces.seeds)
    crop_sets = {name: parse_crop_set(spec) for name, spec in OmegaConf.to_container(b.faces.crop_sets).items()}
    with tracker("benchmark_faces", cfg, dataset=Path(f.paths.identity_split).name, model=f.encoder.name,
                 seeds=",".join(map(str, b.faces.seeds))) as t:
        t.link_train_runs([Path(c).parent for c in ckpts])
        metrics = run_face_benchmark(ckpts, f.paths.identity_split, crop_sets, b.faces.out, resize=b.resize,
                                     batch_size=b.batch_size, repeats=b.faces.repeats)
        log.info("benchmarked %d face encoders into %s", len(ckpts), b.faces.out)
        t.log_results(metrics)
        t.log_artifact(b.faces.out, "benchmark")
        done(t, b.faces.out)


if __name__ == "__main__":
    main()
