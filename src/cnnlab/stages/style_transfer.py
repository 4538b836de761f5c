"""Stage ``style_transfer``: content + style images → ``reports/style/<content>__<style>.png`` (C | S | G)."""

from __future__ import annotations

from omegaconf import DictConfig

from ._app import log, stage, to_dict


@stage(config_name="style")
def main(cfg: DictConfig) -> None:
    from ..style.images import image_name
    from ..style.run import outputs, run
    from ..track import Tracker

    s = to_dict(cfg)["style"]
    files = outputs(s["out"], s["content"], s["style"])
    tags = {"dataset": f"{image_name(s['content'])}__{image_name(s['style'])}", "model": str(s["network"])}
    with Tracker("style_transfer", to_dict(cfg), tags=tags, experiment=cfg.mlflow.experiment,
                 uri=cfg.mlflow.tracking_uri) as t:
        result = run(s, files, on_step=lambda row: t.log_metrics(
            {"J": row["total"], "J_content": row["content"], "J_style": row["style"]}, step=row["step"]))
        last = result.history[-1]
        log.info("step %d: J = %.4g (content %.4g, style %.4g) -> %s", last["step"], last["total"], last["content"],
                 last["style"], files["panel"])
        for path in files.values():
            if path.exists():
                t.log_artifact(path, "style")


if __name__ == "__main__":
    main()
