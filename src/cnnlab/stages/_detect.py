"""What the week-3 stages share: train or evaluate one crop task, recorded in MLflow."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from ._app import log, tracker


def _numbers(metrics: dict) -> dict[str, float]:
    """The scalar metrics (nested dicts flattened with ``_``), for MLflow."""
    out: dict[str, float] = {}
    for k, v in metrics.items():
        if isinstance(v, dict):
            out.update({f"{k}_{kk}": vv for kk, vv in _numbers(v).items()})
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            out[k] = float(v)
    return out


def train_stage(cfg: DictConfig, task: str) -> dict:
    """``train_<task>``: crops of ``cfg.data`` → ``cfg.paths.<task>/{best,last}.ckpt, metrics.json``."""
    from ..detect.tasks import train
    from ..tasks.callbacks import MLflowMetrics

    with tracker(f"train_{task}", cfg, task=task, model=cfg.model.name) as t:
        metrics = train(cfg, task, callbacks=[MLflowMetrics(t)])
        log.info("trained %s: %s", cfg.paths[task], metrics)
        t.log_metrics(_numbers(metrics))
        t.log_artifact(Path(cfg.paths[task]) / "metrics.json")
    return metrics


def evaluate_stage(cfg: DictConfig, task: str) -> dict:
    """``evaluate_<task>``: its best.ckpt on the test split → ``cfg.paths.reports/<task>/``."""
    from ..detect import evaluate

    with tracker(f"evaluate_{task}", cfg, task=task, model=cfg.model.name) as t:
        metrics = getattr(evaluate, f"evaluate_{task}")(cfg)
        log.info("evaluated %s: %s", task, {k: v for k, v in metrics.items() if not isinstance(v, dict)})
        t.log_metrics(_numbers(metrics))
        t.log_artifact(Path(cfg.paths.reports) / task, f"detection/{task}")
    return metrics
