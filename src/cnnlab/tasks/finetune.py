"""Transfer learning: take a trained network, give it a new softmax, train some of it on few images.

**Source** (``finetune.source``): a cnnlab classifier checkpoint (architecture, classes, input
size and normalisation travel in it), or a torchvision-format weight file on disk for the
configured ``model`` (keys renamed by the family's ``tv_remap``; ImageNet normalisation). Both are
read with ``weights_only=True``, so a file that pickles arbitrary objects is refused.
``strategy=scratch`` has no source: the same architecture, randomly initialised and trained on
the same images, is the baseline every strategy is compared with.

**Blocks.** "The last N blocks" is defined once for every family, with no per-family code. The
module tree is flattened through plain containers (``nn.Sequential`` and its subclasses,
``ModuleList``, ``ModuleDict``) in registration order, which in every cnnlab family is forward
order. Each unit that holds weights, other than a normalisation layer, starts a block. BN,
activations, pooling and dropout join the block before them. The new head (every parameter that
``reset_classifier`` creates: ``head``, and GoogLeNet's auxiliary heads) is not a block: it always
trains. So LeNet-5 has 4 blocks (conv1, conv2, fc1, fc2). A ResNet has the stem, then each
residual block. MobileNet v2 has 19: the stem, the 17 bottlenecks and the last 1×1 conv. VGG has
one block per CONV plus one per hidden FC layer.

**Freezing** a block sets ``requires_grad=False`` on its parameters and puts its modules in eval
mode. Its BN layers then use, and keep, their running statistics, and its dropout is off. A
frozen block is a fixed function, which is what makes the cached features exact.

**Strategies** (n = trunk blocks that train, counted from the top):

- ``head``: n = 0. The frozen features of the training and validation images are computed once,
  cached to disk (keyed by a hash of the source file, the architecture, the data set and the
  image list), and the head trains on the cached vectors, as the course suggests. There is no
  augmentation here: a cached vector is the feature of one fixed image.
- ``partial``: n = ``finetune.n_blocks``.
- ``full``: every block.
- ``gradual``: n = ``finetune.n_blocks`` at first, then one more block every
  ``finetune.unfreeze_every`` epochs: the course's "unfreeze from the back, gradually".
- ``scratch``: a fresh network, every block trains.

The target's training split is cut to ``finetune.shots`` seeded-random images per class; its
validation split (early stopping) and test split (``test_acc``) stay whole.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import lightning as L
import numpy as np
import torch
import torch.nn as nn
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import DataLoader, Dataset, TensorDataset
from torchmetrics.classification import MulticlassAccuracy

from ..checkpoint import check_state_dict, read, sub_state
from ..data.datamodule import ImageFolderDataModule
from ..data.prepared_split import read_prepared
from ..data.images import DataError
from ..evaluate.classification import predict
from ..data.seeded import eval_loader, seeded_loader
from ..io import atomic_path
from ..models import create_model
from ..models.convert import load_weight_file, remap_torchvision_state_dict
from ..models.registry import get_entry
from .classifier import Classifier, load_checkpoint
from .checkpointing import BestCheckpoint
from .fit import input_hw, model_kwargs, warn_unused_speed
from .init import apply_init
from .skeleton import build_trainer, fit_and_publish

STRATEGIES = ("head", "partial", "full", "gradual", "scratch")
# torchvision's ImageNet weights expect inputs normalised with these (their transforms' defaults).
IMAGENET_NORMALIZATION = {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}
_CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict)
_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm, nn.GroupNorm, nn.LayerNorm)


# --------------------------------------------------------------------------- blocks and freezing

@dataclass
class Block:
    """One trainable unit of the trunk: a weighted layer or block and the layers that follow it."""

    name: str
    modules: list[nn.Module]

    def parameters(self) -> list[nn.Parameter]:
        return [p for m in self.modules for p in m.parameters()]

    @property
    def frozen(self) -> bool:
        return not any(p.requires_grad for p in self.parameters())

    def set_frozen(self, frozen: bool, training: bool = True) -> None:
        """Freeze (no gradients, eval mode) or unfreeze (gradients, mode ``training``)."""
        for p in self.parameters():
            p.requires_grad_(not frozen)
        for m in self.modules:
            m.train(training and not frozen)


def _units(module: nn.Module, prefix: str = "") -> Iterator[tuple[str, nn.Module]]:
    for name, child in module.named_children():
        if isinstance(child, _CONTAINERS):
            yield from _units(child, f"{prefix}{name}.")
        else:
            yield f"{prefix}{name}", child


def replace_head(model: nn.Module, num_classes: int) -> list[nn.Parameter]:
    """``reset_classifier(num_classes)``, zero the new head, and return its parameters.

    A zero head (as in BiT, Kolesnikov et al. 2020) starts every class equally likely. A random
    one would add a random projection of the features that the few steps of a few-shot run,
    one per epoch, are too few to undo.
    """
    old = list(model.parameters())  # kept alive so that no new parameter can reuse an old id
    old_ids = {id(p) for p in old}
    model.reset_classifier(num_classes)
    new = [p for p in model.parameters() if id(p) not in old_ids]
    with torch.no_grad():
        for p in new:
            p.zero_()
    return new


def trunk_blocks(model: nn.Module, head_params: Iterable[nn.Parameter] | None = None) -> list[Block]:
    """The ordered blocks of ``model`` below its head (see the module docstring).

    Args:
        head_params: the classifier's parameters, excluded from the blocks; defaults to those of
            ``model.get_classifier()``.

    Raises:
        ValueError: some parameter belongs to no block (it would silently never freeze).
    """
    head_params = list(model.get_classifier().parameters() if head_params is None else head_params)
    head = {id(p) for p in head_params}
    blocks: list[Block] = []
    pending: list[nn.Module] = []  # parameter-free layers before the first weighted one
    for name, unit in _units(model):
        params = list(unit.parameters())
        if params and all(id(p) in head for p in params):
            continue
        if params and not isinstance(unit, _NORMS):
            blocks.append(Block(name, pending + [unit]))
            pending = []
        elif blocks:
            blocks[-1].modules.append(unit)
        else:
            pending.append(unit)
    covered = head | {id(p) for b in blocks for p in b.parameters()}
    stray = [n for n, p in model.named_parameters() if id(p) not in covered]
    if stray:
        raise ValueError(f"parameters outside any block: {stray[:5]}; blocks need a module tree of "
                         f"containers and layers")
    return blocks


def set_trainable(blocks: Sequence[Block], n: int, training: bool = True) -> None:
    """Unfreeze the last ``n`` blocks and freeze all the others."""
    for i, block in enumerate(blocks):
        block.set_frozen(i < len(blocks) - n, training)


class FreezeSchedule(L.Callback):
    """At every epoch start, train the last ``start + epoch // every`` blocks (``every=None``: fixed).

    With ``every`` set this is gradual unfreezing. The count is logged as ``ft/trainable_blocks``.
    Lightning's own ``BaseFinetuning`` is not used because its frozen BN layers keep normalising
    with batch statistics, which breaks the equality with cached features.
    """

    def __init__(self, blocks: Sequence[Block], start: int, every: int | None = None):
        self.blocks, self.start, self.every = list(blocks), start, every

    def n_trainable(self, epoch: int) -> int:
        grown = epoch // self.every if self.every else 0
        return min(len(self.blocks), self.start + grown)

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        n = self.n_trainable(trainer.current_epoch)
        set_trainable(self.blocks, n, training=True)
        pl_module.log("ft/trainable_blocks", float(n), on_step=False, on_epoch=True)


def schedule_for(strategy: str, n_blocks: int | None, every: int | None,
                 blocks: Sequence[Block]) -> tuple[int, int | None]:
    """``(blocks trainable at epoch 0, unfreeze every k epochs or None)`` for a strategy.

    Raises:
        ValueError: unknown strategy, or ``n_blocks`` / ``unfreeze_every`` out of range.
    """
    names = ", ".join(b.name for b in blocks)
    if strategy in ("full", "scratch"):
        return len(blocks), None
    if strategy == "head":
        return 0, None
    if strategy == "partial":
        if not n_blocks or not 1 <= n_blocks <= len(blocks):
            raise ValueError(f"finetune.n_blocks must be 1..{len(blocks)} for strategy=partial, got {n_blocks} "
                             f"(blocks: {names})")
        return n_blocks, None
    if strategy == "gradual":
        if not every or every < 1:
            raise ValueError(f"finetune.unfreeze_every must be >= 1 for strategy=gradual, got {every}")
        if not 0 <= (n_blocks or 0) < len(blocks):
            raise ValueError(f"finetune.n_blocks must be 0..{len(blocks) - 1} for strategy=gradual (blocks: {names})")
        return n_blocks or 0, every
    raise ValueError(f"finetune.strategy must be one of {', '.join(STRATEGIES)}, got {strategy!r}")


# --------------------------------------------------------------------------- sources

@dataclass
class Source:
    """A network to start from, with its source head still on, and what feeding it requires."""

    model: nn.Module
    arch: str
    model_kwargs: dict[str, Any]
    in_chans: int
    input_size: list[int]
    normalization: dict[str, list[float]] | None  # None: the target data's own statistics
    path: str | None = None
    sha256: str | None = None


def file_sha256(path: str | Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def _read_safely(path: Path) -> Any:
    return read(path, "finetune.source")


def _from_checkpoint(path: Path, hp: dict, arch: str, kwargs: dict, channels: int) -> Source:
    if hp["arch"] != arch:
        raise ValueError(f"{path}: the checkpoint is a {hp['arch']}, but model={arch}; "
                         f"fine-tune with model={hp['arch']}")
    if (hp.get("model_kwargs") or {}) != kwargs:
        raise ValueError(f"{path}: the checkpoint's {arch} was built with {hp.get('model_kwargs')}, the "
                         f"configured one with {kwargs}; set the model.* keys to match")
    if hp["in_chans"] != channels:
        raise ValueError(f"{path}: the checkpoint takes {hp['in_chans']}-channel images but the target data "
                         f"has {channels} channel(s); prepare it with data.channels={hp['in_chans']}")
    from ..checkpoint import CheckpointMismatch

    try:
        model, hp = load_checkpoint(path)
    except (RuntimeError, CheckpointMismatch) as err:  # weights of another shape than the metadata says
        raise ValueError(f"{path}: its weights do not fit its own metadata ({arch}, {len(hp['classes'])} classes "
                         f"{hp['classes']}, {hp['in_chans']} input channels): {str(err).splitlines()[0]}") from err
    return Source(model, arch, kwargs, hp["in_chans"], list(hp["input_size"]), dict(hp["normalization"]),
                  str(path), file_sha256(path))


def _from_torchvision(path: Path, arch: str, kwargs: dict, channels: int, input_size: list[int]) -> Source:
    tv = get_entry(arch).default_cfg.get("torchvision")
    if tv is None:
        raise ValueError(f"{path}: not a cnnlab checkpoint, and model={arch} has no torchvision counterpart "
                         f"to read a weight file for")
    state = remap_torchvision_state_dict(arch, load_weight_file(path))
    if "head.weight" not in state:
        raise ValueError(f"{path}: no classifier weights after renaming torchvision {tv} keys; is it a torchvision "
                         f"{tv} state dict? First keys: {list(state)[:3]}")
    model = create_model(arch, num_classes=state["head.weight"].shape[0], in_chans=channels, **kwargs)
    check_state_dict(model, state, f"{path} (as torchvision {tv})")
    model.load_state_dict(state)
    return Source(model.eval(), arch, kwargs, channels, list(input_size), dict(IMAGENET_NORMALIZATION),
                  str(path), file_sha256(path))


def load_source(cfg: DictConfig, channels: int, num_classes: int) -> Source:
    """The configured starting network (``finetune.source``), or a fresh one for ``scratch``.

    Raises:
        FileNotFoundError: no such source file.
        ValueError: the file pickles objects, or its architecture, kwargs or input channels do
            not fit the configured model and the target data.
    """
    arch, kwargs = cfg.model.name, model_kwargs(cfg)
    if cfg.finetune.strategy == "scratch":
        model = apply_init(create_model(arch, num_classes=num_classes, in_chans=channels, **kwargs),
                           cfg.get("init", "default"))
        return Source(model, arch, kwargs, channels, list(input_hw(cfg)), None)
    path = Path(cfg.finetune.source)
    obj = _read_safely(path)
    hp = obj.get("hyper_parameters") if isinstance(obj, dict) else None
    if isinstance(hp, dict) and "arch" in hp and "state_dict" in obj:
        return _from_checkpoint(path, hp, arch, kwargs, channels)
    return _from_torchvision(path, arch, kwargs, channels, list(input_hw(cfg)))


# --------------------------------------------------------------------------- few-shot target data

def few_shot(rows: list[dict], shots: int | None, seed: int) -> list[dict]:
    """Keep ``shots`` seeded-random training images per class (all of them if None); other splits whole.

    Raises:
        DataError: a class has fewer than ``shots`` training images.
    """
    if not shots:
        return rows
    rng = np.random.default_rng(seed)
    by_class: dict[str, list[dict]] = {}
    for r in sorted((r for r in rows if r["split"] == "train"), key=lambda r: r["path"]):
        by_class.setdefault(r["label"], []).append(r)
    keep = set()
    for label, items in sorted(by_class.items()):
        if len(items) < shots:
            raise DataError(f"class {label!r} has {len(items)} training images, fewer than finetune.shots={shots}")
        keep.update(items[i]["path"] for i in rng.permutation(len(items))[:shots])
    return [r for r in rows if r["split"] != "train" or r["path"] in keep]


def target_data(cfg: DictConfig, src: Source, augment: bool) -> ImageFolderDataModule:
    """The target data set at the source's input size and normalisation, its train split cut to ``shots``."""
    transform = instantiate(cfg.augment) if augment else None
    dm = ImageFolderDataModule(cfg.paths.prepared, src.input_size, batch_size=cfg.batch_size,
                               num_workers=cfg.num_workers, train_transform=transform)
    dm.rows = few_shot(dm.rows, cfg.finetune.shots, cfg.seed)
    logging.getLogger(__name__).info(
        "finetune.shots=%s: %s training images per class of %s (%d in all); val and test splits whole",
        cfg.finetune.shots, cfg.finetune.shots or "all", cfg.data.name, sum(r["split"] == "train" for r in dm.rows))
    if src.normalization:  # the features were learnt on inputs normalised this way
        dm.meta["mean"], dm.meta["std"] = src.normalization["mean"], src.normalization["std"]
    return dm


def loader(ds: Dataset, batch_size: int, shuffle: bool, seed: int, num_workers: int = 0) -> DataLoader:
    """A DataLoader whose order and augmentation depend on ``seed`` and the epoch alone (not on how
    much RNG ran before), so that every strategy sees the same batches and a resumed run those of
    the uninterrupted one (:mod:`cnnlab.data.seeded`)."""
    if not shuffle:
        return eval_loader(ds, batch_size, num_workers)
    return seeded_loader(ds, batch_size=batch_size, shuffle=True, seed=seed, num_workers=num_workers)


# --------------------------------------------------------------------------- cached features (head)

@torch.inference_mode()
def extract_features(model: nn.Module, ds: Dataset, batch_size: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """Pre-logit feature vectors [N, num_features] and targets [N] of ``ds``, in order, in eval mode."""
    model.eval()
    feats, targets = [], []
    for x, y in DataLoader(ds, batch_size=batch_size):
        feats.append(model.forward_head(model.forward_features(x), pre_logits=True))
        targets.append(y)
    return torch.cat(feats).float(), torch.cat(targets)


def dataset_sha256(root: str | Path) -> str:
    """Hash of a prepared folder's dataset.json and manifest.csv (prepared folders are immutable)."""
    h = hashlib.sha256()
    for name in ("dataset.json", "manifest.csv"):
        h.update((Path(root) / name).read_bytes())
    return h.hexdigest()


def cached_features(model: nn.Module, ds: Dataset, key: dict[str, Any],
                    cache_dir: str | Path) -> tuple[torch.Tensor, torch.Tensor]:
    """Features of ``ds`` from ``<cache_dir>/<split>-<hash of key>.pt``, computed and written once.

    ``key`` must name everything the features depend on: the source file's hash, architecture,
    input size, normalisation, the data set's hash, the split and its image paths.
    """
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]
    path = Path(cache_dir) / f"{key['split']}-{digest}.pt"
    if path.is_file():
        obj = read(path, "feature cache")
        return obj["features"], obj["targets"]
    feats, targets = extract_features(model, ds)
    with atomic_path(path) as tmp:
        torch.save({"features": feats, "targets": targets, "key": key}, tmp)
    return feats, targets


class CachedHead(L.LightningModule):
    """Trains only a head on precomputed features.

    Its steps, loss, logs and optimiser are the Classifier's own methods (``self.model`` is the
    head here), so the cached path cannot drift from training through the frozen backbone. Its
    checkpoints hold the whole classifier (``full``: frozen trunk and this head, with the
    Classifier's hyper-parameters), so the published ``best.ckpt`` is a classifier checkpoint
    like any other; resuming reads the head back out of it.
    """

    def __init__(self, head: nn.Module, num_classes: int, optim: dict | None, scheduler: dict | None,
                 full: Classifier | None = None):
        super().__init__()
        self.save_hyperparameters(ignore=["head", "full"])
        self.model = head
        object.__setattr__(self, "_full", full)  # not a submodule: its trunk is frozen and never run here
        self.train_acc = MulticlassAccuracy(num_classes=num_classes, average="micro")
        self.val_acc = MulticlassAccuracy(num_classes=num_classes, average="micro")

    _step = Classifier._step
    training_step = Classifier.training_step
    validation_step = Classifier.validation_step
    configure_optimizers = Classifier.configure_optimizers

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if self._full is not None:
            checkpoint["state_dict"] = self._full.state_dict()
            checkpoint["hyper_parameters"] = dict(self._full.hparams)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if self._full is not None:
            head = sub_state(checkpoint["state_dict"], "model.head.")
            checkpoint["state_dict"] = {f"model.{k}": v for k, v in head.items()}


# --------------------------------------------------------------------------- training

def save_classifier(module: Classifier, path: str | Path, epoch: int = 0, global_step: int = 0) -> Path:
    """Write a weights-and-metadata checkpoint that ``load_checkpoint`` and ``Classifier.load_from_checkpoint`` read."""
    torch.save({"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams), "epoch": epoch,
                "global_step": global_step, "pytorch-lightning_version": L.__version__}, path)
    return Path(path)


def _check_one_device(trainer: L.Trainer) -> None:
    if trainer.world_size > 1:  # a few hundred images: one device is plenty, and one process publishes
        raise ValueError(f"fine-tuning runs on one device, but the trainer config asks for {trainer.world_size} "
                         f"processes; use trainer=cpu or trainer=gpu")


class _OneDevice(L.Callback):
    """Fine-tuning runs on one device (checked when the skeleton's Trainer sets up)."""

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        _check_one_device(trainer)


def _trainer(cfg: DictConfig, work: Path, callbacks: Sequence[L.Callback]) -> tuple[L.Trainer, BestCheckpoint]:
    """The Trainer fine-tuning trains with (the skeleton's, from ``cfg.trainer`` and ``early_stopping``)."""
    es = cfg.early_stopping
    warn_unused_speed(cfg, "fine-tuning")  # a few hundred images through host DataLoaders
    trainer, best, _ = build_trainer(cfg, Path(work), monitor=es.monitor, mode=es.mode, patience=es.patience,
                                     callbacks=[_OneDevice(), *callbacks])
    _check_one_device(trainer)
    return trainer, best


def _fit(cfg: DictConfig, trainee: L.LightningModule, module: Classifier, loaders: tuple[DataLoader, DataLoader],
         out: Path, callbacks: Sequence[L.Callback], summary) -> dict[str, Any]:
    """Train through the skeleton into ``out``; load the selected epoch's weights into ``module``."""
    es = cfg.early_stopping
    warn_unused_speed(cfg, "fine-tuning")  # a few hundred images through host DataLoaders

    def _summary(m: L.LightningModule, trainer: L.Trainer, best: BestCheckpoint) -> dict[str, Any]:
        module.load_state_dict(read(best.best_model_path, "best checkpoint")["state_dict"])
        return {"best_val_acc": float(best.best_model_score), **(summary(trainer) if summary else {})}

    return fit_and_publish(cfg, trainee, loaders, out, monitor=es.monitor, mode=es.mode, patience=es.patience,
                           callbacks=[_OneDevice(), *callbacks], summary=_summary)


def fit_cached_head(cfg: DictConfig, module: Classifier, dm: ImageFolderDataModule, key: dict[str, Any],
                    out: Path, callbacks: Sequence[L.Callback] = (), summary=None) -> dict[str, Any]:
    """Train ``module.model.head`` on cached frozen features, publishing into ``out``.

    The selected epoch's head is loaded into ``module``. Returns the published metrics
    (``best_val_acc``, ``epochs``, ... and what ``summary(trainer)`` adds).
    """
    model = module.model
    data = {s: cached_features(model, dm.split(s), {**key, "split": s, "paths": dm.split(s).paths},
                               cfg.finetune.cache_dir) for s in ("train", "val")}
    head = CachedHead(model.head, dm.num_classes, module.hparams.optim, module.hparams.scheduler, full=module)
    head.train()  # extract_features left the model, head included, in eval mode
    loaders = (loader(TensorDataset(*data["train"]), cfg.batch_size, True, cfg.seed),
               loader(TensorDataset(*data["val"]), cfg.batch_size, False, cfg.seed))
    return _fit(cfg, head, module, loaders, Path(out), callbacks, summary)


def fit_through(cfg: DictConfig, module: Classifier, dm: ImageFolderDataModule, schedule: FreezeSchedule,
                out: Path, callbacks: Sequence[L.Callback] = (), summary=None) -> dict[str, Any]:
    """Train images through the model, with ``schedule`` deciding which blocks train each epoch.

    Publishes into ``out`` and loads the selected epoch's weights into ``module``; returns the metrics.
    """
    module.train()
    loaders = (loader(dm.split("train"), cfg.batch_size, True, cfg.seed, cfg.num_workers),
               loader(dm.split("val"), cfg.batch_size, False, cfg.seed, cfg.num_workers))
    return _fit(cfg, module, module, loaders, Path(out), [schedule, *callbacks], summary)


def accuracy(model: nn.Module, ds: Dataset, batch_size: int = 256) -> float:
    probs, y = predict(model.eval(), DataLoader(ds, batch_size=batch_size))
    return float((probs.argmax(1) == y).float().mean())


def prepare(cfg: DictConfig) -> tuple[Classifier, ImageFolderDataModule, Source, list[Block], tuple[int, int | None]]:
    """Load the source, the few-shot target data, replace the head and freeze as the strategy says."""
    ft = cfg.finetune
    meta, _ = read_prepared(cfg.paths.prepared)
    src = load_source(cfg, meta["channels"], len(meta["classes"]))
    dm = target_data(cfg, src, augment=ft.strategy != "head")  # cached features cannot be augmented
    head_params = (list(src.model.get_classifier().parameters()) if ft.strategy == "scratch"
                   else replace_head(src.model, dm.num_classes))
    blocks = trunk_blocks(src.model, head_params)
    start, every = schedule_for(ft.strategy, ft.get("n_blocks"), ft.get("unfreeze_every"), blocks)
    set_trainable(blocks, start)
    module = Classifier(arch=src.arch, classes=dm.classes, in_chans=dm.channels, input_size=list(src.input_size),
                        normalization=dm.normalization, model_kwargs=src.model_kwargs,
                        optim=OmegaConf.to_container(cfg.optim, resolve=True),
                        scheduler=OmegaConf.to_container(cfg.scheduler, resolve=True) if cfg.get("scheduler") else None)
    module.model = src.model
    return module, dm, src, blocks, (start, every)


def finetune(cfg: DictConfig, callbacks: Sequence[L.Callback] = ()) -> dict[str, Any]:
    """Fine-tune as ``cfg.finetune`` says; publish ``best.ckpt``, ``last.ckpt`` and ``metrics.json`` in ``finetune.out``.

    Goes through the one training skeleton (:func:`cnnlab.tasks.skeleton.fit_and_publish`): the
    output folder appears only when everything succeeded, and ``resume=true`` continues an
    interrupted run. ``best.ckpt`` is a classifier checkpoint of the selected epoch (for
    ``head``, the frozen trunk with the trained head). Returns the metrics.
    """
    L.seed_everything(cfg.seed, workers=True)
    ft = cfg.finetune
    module, dm, src, blocks, (start, every) = prepare(cfg)
    trainable = sum(p.numel() for p in module.model.parameters() if p.requires_grad)

    def summary(trainer: L.Trainer) -> dict[str, Any]:
        return {
            "strategy": ft.strategy, "shots": ft.shots, "source": src.path, "source_sha256": src.sha256,
            "test_acc": accuracy(module.model, dm.split("test")), "n_train": len(dm.split("train")),
            "blocks": len(blocks), "trainable_blocks_at_start": start, "trainable_params_at_start": trainable,
            "num_params": sum(p.numel() for p in module.model.parameters()),
        }

    if ft.strategy == "head":
        key = {"source": src.sha256, "arch": src.arch, "model_kwargs": src.model_kwargs,
               "input_size": src.input_size, "normalization": dm.normalization,
               "data": dataset_sha256(cfg.paths.prepared)}
        return fit_cached_head(cfg, module, dm, key, Path(ft.out), callbacks, summary)
    return fit_through(cfg, module, dm, FreezeSchedule(blocks, start, every), Path(ft.out), callbacks, summary)


# --------------------------------------------------------------------------- comparison

_ORDER = {s: i for i, s in enumerate(("scratch", "head", "partial", "gradual", "full"))}


def collect_runs(root: str | Path, model: str = "*") -> list[dict[str, Any]]:
    """Every fine-tuning ``details.json`` (its metrics with strategy and source) of ``model`` (a glob) under
    ``root`` (``models/<target ds>``)."""
    return [json.loads(p.read_text()) for p in sorted(Path(root).glob(f"{model}-ft-*/**/details.json"))]


def comparison_table(runs: Iterable[dict[str, Any]]) -> tuple[list[dict[str, Any]], str]:
    """Test accuracy per strategy and images per class (mean over seeds), as rows and markdown.

    Returns:
        ``(rows, markdown)``: rows are ``{"strategy", "shots", "test_acc", "runs"}``; the markdown
        has one row per strategy and one column per number of images per class.
    """
    cells: dict[tuple[str, int], list[float]] = {}
    for r in runs:
        cells.setdefault((r["strategy"], r["shots"]), []).append(r["test_acc"])
    order = sorted(cells, key=lambda c: (_ORDER.get(c[0], len(_ORDER)), c[1] or 0))
    rows = [{"strategy": s, "shots": k, "test_acc": float(np.mean(cells[s, k])), "runs": len(cells[s, k])}
            for s, k in order]
    shots = sorted({k for _, k in order}, key=lambda k: k or 0)
    lines = ["| strategy | " + " | ".join(f"{k or 'all'} / class" for k in shots) + " |",
             "|---|" + "---:|" * len(shots)]
    for s in dict.fromkeys(s for s, _ in order):
        lines.append(f"| {s} | " + " | ".join(f"{np.mean(cells[s, k]):.1%}" if (s, k) in cells else "–"
                                               for k in shots) + " |")
    return rows, "\n".join(lines) + "\n"


def write_comparison(root: str | Path, out_dir: str | Path, model: str = "*") -> tuple[list[dict[str, Any]], str]:
    """Compare ``model``'s runs under ``root``: write ``table.md`` and ``comparison.json`` into ``out_dir``."""
    rows, table = comparison_table(collect_runs(root, model))
    if not rows:
        raise FileNotFoundError(f"no fine-tuning details.json under {root}/{model}-ft-*/")
    with atomic_path(out_dir) as tmp:
        tmp.mkdir()
        (tmp / "table.md").write_text(table)
        (tmp / "comparison.json").write_text(json.dumps(rows, indent=2) + "\n")
    return rows, table
