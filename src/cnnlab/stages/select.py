"""Stage ``select``: the evaluations' validation accuracy + the checkpoints' measured latency → the
most accurate model on the dev set within the latency budget, and that model's test score."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from ._app import done, log, stage, tracker


@stage
def main(cfg: DictConfig) -> None:
    from ..evaluate.select import checkpoint_latency_ms, select_model, selection_markdown
    from ..io import atomic_path

    s = cfg.select
    if not s.metrics:
        raise ValueError("select.metrics is empty: pass the evaluation metrics files, e.g. "
                         "'select.metrics=[reports/eval/digits/lenet5/seed0/metrics.json]'")
    with tracker("select", cfg) as t:
        result = select_model(list(s.metrics), list(s.checkpoints), s.latency_budget_ms,
                              latency=lambda c: checkpoint_latency_ms(c, s.latency_repeats))
        with atomic_path(s.out) as tmp:
            tmp.mkdir()
            import json

            (tmp / "selection.json").write_text(json.dumps(result, indent=2) + "\n")
            (tmp / "selection.md").write_text(selection_markdown(result))
        chosen = result["chosen"]
        log.info("selected %s (budget %.3f ms/image)", chosen and chosen["checkpoint"], s.latency_budget_ms)
        t.set_tags({"chosen": chosen["checkpoint"] if chosen else "none"})
        t.log_results({"n_candidates": len(result["candidates"]),
                       "n_within_budget": sum(r["meets_budget"] for r in result["candidates"]),
                       **({"chosen_val_accuracy": chosen["val_accuracy"], "chosen_test_accuracy": chosen["test_accuracy"],
                           "chosen_latency_ms": chosen["latency_ms"]} if chosen else {})})
        t.log_artifact(Path(s.out), "selection")
        wrote = s.out
        if chosen:
            source = {"checkpoint": chosen["checkpoint"], **_source(chosen["metrics_file"])}
            if source.get("train_run_id"):
                t.set_tags({"cnnlab.train_run_id": source["train_run_id"]})
            if s.get("registered_model") and source.get("checkpoint"):
                from ..model_registry import ALIAS, register_checkpoint

                version = register_checkpoint(t, source["checkpoint"], s.registered_model)
                t.set_tags({"registered_model": f"{s.registered_model}/{version}"})
                wrote = f"{s.out} and registered {source['checkpoint']} as {s.registered_model} version {version} @{ALIAS}"
        done(t, wrote)


def _source(metrics_file: str) -> dict:
    """What evaluate recorded beside a metrics file (``source.json``: checkpoint, train run id)."""
    import json

    path = Path(metrics_file).with_name("source.json")
    return json.loads(path.read_text()) if path.is_file() else {}


if __name__ == "__main__":
    main()
