"""Stage ``train_localiser``: classification with localisation (the course's y vector), trained on crops of the scenes → ``paths.localiser``."""

from __future__ import annotations

from omegaconf import DictConfig

from ._app import stage
from ._detect import train_stage


@stage(config_name="detect")
def main(cfg: DictConfig) -> None:
    train_stage(cfg, "localiser")


if __name__ == "__main__":
    main()
