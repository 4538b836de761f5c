"""Stage ``train_windows``: the course's sliding-window classifier, trained on crops of the scenes → ``paths.windows``."""

from __future__ import annotations

from omegaconf import DictConfig

from ._app import stage
from ._detect import train_stage


@stage(config_name="detect")
def main(cfg: DictConfig) -> None:
    train_stage(cfg, "windows")


if __name__ == "__main__":
    main()
