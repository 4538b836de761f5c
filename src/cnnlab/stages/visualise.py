"""Stage ``visualise``: a checkpoint + images → ``reports/visualise/<ds>/<model>/<layer>.png``."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from ._app import log, stage, to_dict


@stage(config_name="visualise")
def main(cfg: DictConfig) -> None:
    from ..inside.run import dataset_name, model_name, visualise
    from ..track import Tracker

    v = cfg.visualise
    ds, name = v.dataset or dataset_name(v.data), v.name or model_name(v.model)
    out = Path(v.out) / ds / name
    with Tracker("visualise", to_dict(cfg), tags={"dataset": ds, "model": name}, experiment=cfg.mlflow.experiment,
                 uri=cfg.mlflow.tracking_uri) as t:
        summary = visualise(v.model, v.data, out, layers=v.layers, n_layers=v.n_layers, units=v.units, k=v.top,
                            max_images=v.max_images, batch_size=v.batch_size)
        for layer, info in summary["layers"].items():
            log.info("%s: receptive field %s, stride %s -> %s", layer, info["receptive_field"], info["stride"],
                     out / info["file"])
        t.log_metrics({"images": summary["images"], "layers": len(summary["layers"])})
        t.log_artifact(out, "visualise")


if __name__ == "__main__":
    main()
