"""Stage ``augment``: prepared train split → ``data/augmented/<data.name>/``.

Writes, atomically as one folder (``cfg.paths.augmented``):

- ``pca_colour.json``: the train split's RGB (or grey) covariance eigen-decomposition, which the
  ``pca_colour`` and ``heavy`` policies read;
- ``preview.png``: originals and variants of the ``augment=<policy>`` policy, also logged to MLflow;
- for ``augment_k`` ≥ 1, the originals plus k variants of every training image, with val/test
  copied unchanged, in the prepared layout (``manifest.csv``, ``dataset.json``) so training can
  read it like a prepared folder. ``augment_k=0`` (large data sets) skips the images.
"""

from __future__ import annotations

from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig

from ..augment import PCA_FILE, bind_pca_colour, fit_pca_colour, save_pca_colour
from ..augment.materialise import materialise
from ..augment.preview import preview_grid, preview_samples
from ..io import atomic_path
from ._app import done, log, stage, tracker

PREVIEW_FILE = "preview.png"


def run(cfg: DictConfig, policy_name: str) -> dict:
    """Fit PCA colour, draw the preview and materialise variants into ``cfg.paths.augmented``.

    Returns the metrics to log (eigenvalues, image counts).
    """
    if cfg.augment_k < 0:
        raise ValueError(f"augment_k must be >= 0, got {cfg.augment_k}")
    prepared, out = Path(cfg.paths.prepared), Path(cfg.paths.augmented)
    eigvals, eigvecs = fit_pca_colour(prepared)
    policy = instantiate(cfg.augment)
    # The policy's PCAColour points at <out>/pca_colour.json, which exists only once this
    # folder is published: hand it the fitted decomposition directly.
    bind_pca_colour(policy, eigvals, eigvecs)
    metrics = {f"pca_eigval_{i}": float(v) for i, v in enumerate(eigvals)}
    with atomic_path(out) as tmp:
        tmp.mkdir()
        save_pca_colour(tmp / PCA_FILE, eigvals, eigvecs, source=str(prepared))
        preview_grid(preview_samples(prepared), policy, tmp / PREVIEW_FILE, seed=cfg.seed,
                     title=f"{cfg.data.name}: augment={policy_name}")
        if cfg.augment_k > 0:
            meta = materialise(prepared, tmp, policy, k=cfg.augment_k, seed=cfg.seed, policy_name=policy_name)
            metrics |= {f"n_{split}": n for split, n in meta["counts"].items()}
    return metrics


@stage
def main(cfg: DictConfig) -> None:
    policy_name = HydraConfig.get().runtime.choices.get("augment")
    with tracker("augment", cfg, augment=policy_name) as t:
        metrics = run(cfg, policy_name)
        out = Path(cfg.paths.augmented)
        log.info("augmented %s with %s (k=%d): %s", out, policy_name, cfg.augment_k, metrics)
        t.log_results(metrics | {"augment_k": cfg.augment_k})
        t.log_artifact(out / PREVIEW_FILE)
        t.log_artifact(out / PCA_FILE)
        if (out / "dataset.json").is_file():
            t.log_artifact(out / "dataset.json")
        done(t, out)


if __name__ == "__main__":
    main()
