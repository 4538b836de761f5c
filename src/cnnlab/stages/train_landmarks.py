"""Stage ``train_landmarks``: 5 face landmarks regressed from face crops, trained on crops of the scenes → ``paths.landmarks``."""

from __future__ import annotations

from omegaconf import DictConfig

from ._app import stage
from ._detect import train_stage


@stage(config_name="detect")
def main(cfg: DictConfig) -> None:
    train_stage(cfg, "landmarks")


if __name__ == "__main__":
    main()
