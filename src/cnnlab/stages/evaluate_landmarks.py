"""Stage ``evaluate_landmarks``: 5 face landmarks regressed from face crops on the test split → ``reports/detection/<data>/landmarks/``."""

from __future__ import annotations

from omegaconf import DictConfig

from ._app import stage
from ._detect import evaluate_stage


@stage(config_name="detect")
def main(cfg: DictConfig) -> None:
    evaluate_stage(cfg, "landmarks")


if __name__ == "__main__":
    main()
