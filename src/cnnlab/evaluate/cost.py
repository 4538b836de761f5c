"""Cost figures next to every accuracy: model size and latency per image."""

from __future__ import annotations

import statistics
import time
from typing import Any, Callable

import torch
import torch.nn as nn


def model_bytes(module: Any) -> int:
    """Parameter and buffer bytes of ``module`` (0 for a plain function)."""
    if not isinstance(module, nn.Module):
        return 0
    return sum(t.numel() * t.element_size() for t in [*module.parameters(), *module.buffers()])


@torch.inference_mode()
def latency_ms(fn: Callable[[torch.Tensor], torch.Tensor], batch: torch.Tensor, repeats: int) -> float:
    """Median wall time per image (ms) of ``fn(batch)`` over ``repeats`` calls after a warm-up."""
    fn(batch)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn(batch)
        times.append(time.perf_counter() - start)
    return 1000.0 * statistics.median(times) / len(batch)
