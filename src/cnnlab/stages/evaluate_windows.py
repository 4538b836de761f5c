"""Stage ``evaluate_windows``: the course's sliding-window classifier on the test split → ``reports/detection/<data>/windows/``."""

from __future__ import annotations

from omegaconf import DictConfig

from ._app import stage
from ._detect import evaluate_stage


@stage(config_name="detect")
def main(cfg: DictConfig) -> None:
    evaluate_stage(cfg, "windows")


if __name__ == "__main__":
    main()
