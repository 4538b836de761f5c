"""Transfer learning: take a trained network, give it a new softmax, train some of it on few images.

One module per concern: :mod:`.sources` (what to start from, checked against the config),
:mod:`.data` (the few-shot target data), :mod:`.strategies` (the new head; which blocks train
when; the blocks and freezing themselves are :mod:`cnnlab.models.freezing`'s), :mod:`.cached`
(strategy ``head`` on cached features), :mod:`.train` (the run through the one training skeleton;
its docstring describes the strategies) and :mod:`.compare` (the comparison table).
"""

from ...models.freezing import Block, set_trainable, trunk_blocks
from .cached import CachedHead, cached_features, dataset_sha256, extract_features
from .compare import collect_runs, comparison_table, write_comparison
from .data import few_shot, loader, target_data
from .sources import IMAGENET_NORMALIZATION, Source, load_source
from .strategies import STRATEGIES, FreezeSchedule, replace_head, schedule_for
from .train import accuracy, finetune, fit_cached_head, fit_through, prepare, save_classifier

__all__ = [
    "Block", "set_trainable", "trunk_blocks", "CachedHead", "cached_features", "dataset_sha256", "extract_features",
    "collect_runs", "comparison_table", "write_comparison", "few_shot", "loader", "target_data",
    "IMAGENET_NORMALIZATION", "Source", "load_source", "STRATEGIES", "FreezeSchedule", "replace_head",
    "schedule_for", "accuracy", "finetune", "fit_cached_head", "fit_through", "prepare", "save_classifier",
]
