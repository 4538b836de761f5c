"""Stage ``evaluate_localiser``: classification with localisation (the course's y vector) on the test split → ``reports/detection/<data>/localiser/``."""

from __future__ import annotations

from omegaconf import DictConfig

from ._app import stage
from ._detect import evaluate_stage


@stage(config_name="detect")
def main(cfg: DictConfig) -> None:
    evaluate_stage(cfg, "localiser")


if __name__ == "__main__":
    main()
