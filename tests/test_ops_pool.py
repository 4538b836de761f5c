"""cnnlab.ops pooling against PyTorch and the seeds' worked examples."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cnnlab.ops import create_mask_from_window, distribute_value, pool_backward, pool_forward

TOL = dict(rtol=1e-6, atol=1e-6)
TORCH_POOL = {"max": F.max_pool2d, "average": F.avg_pool2d}

# The seeds' 4×4 pooling example (000, "Max Pooling").
SEED_4X4 = np.array([[1, 3, 2, 1], [2, 9, 1, 1], [1, 3, 2, 3], [5, 6, 1, 2]], dtype=float)


def _nchw(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a.transpose(0, 3, 1, 2)))


def _nhwc(t: torch.Tensor) -> np.ndarray:
    return t.detach().numpy().transpose(0, 2, 3, 1)


def _pool2d(image: np.ndarray, f: int, stride: int, mode: str) -> np.ndarray:
    """Pool a single 2-D image through the batched API."""
    A, _ = pool_forward(image[None, :, :, None], {"f": f, "stride": stride}, mode=mode)
    return A[0, :, :, 0]


def _random_cases(n: int, seed: int = 0) -> list[dict]:
    """Random shapes with windows that tile, overlap (stride < f) and skip (stride > f)."""
    rng = np.random.default_rng(seed)
    cases = []
    for i in range(n):
        f, s = int(rng.integers(1, 5)), int(rng.integers(1, 4))
        cases.append(dict(mode=("max", "average")[i % 2], m=int(rng.integers(1, 4)),
                          n_H=int(rng.integers(f, f + 7)), n_W=int(rng.integers(f, f + 7)),
                          c=int(rng.integers(1, 5)), f=f, stride=s,
                          seed=int(rng.integers(2**31))))
    return cases


CASES = _random_cases(12)


def _check_against_torch(A: np.ndarray, dA_seed: int, f: int, stride: int, mode: str) -> None:
    A_out, cache = pool_forward(A, {"f": f, "stride": stride}, mode=mode)
    A_t = _nchw(A).requires_grad_()
    out_t = TORCH_POOL[mode](A_t, kernel_size=f, stride=stride)
    np.testing.assert_allclose(A_out, _nhwc(out_t), **TOL)

    dA = np.random.default_rng(dA_seed).standard_normal(A_out.shape)
    out_t.backward(_nchw(dA))
    dA_prev = pool_backward(dA, cache, mode=mode)
    assert dA_prev.shape == A.shape
    np.testing.assert_allclose(dA_prev, _nhwc(A_t.grad), **TOL)


@pytest.mark.parametrize("case", CASES,
                         ids=lambda c: f"{c['mode']}-f{c['f']}s{c['stride']}")
def test_pool_forward_backward_match_torch(case):
    rng = np.random.default_rng(case["seed"])
    A = rng.standard_normal((case["m"], case["n_H"], case["n_W"], case["c"]))
    _check_against_torch(A, case["seed"] + 1, case["f"], case["stride"], case["mode"])


@pytest.mark.parametrize("f, stride", [(2, 2), (3, 1), (3, 2)])
def test_max_pool_gradient_with_ties_matches_torch(f, stride):
    """After a ReLU whole windows tie at 0; the gradient must go to one entry, not all."""
    rng = np.random.default_rng(4)
    A = np.maximum(rng.integers(-3, 3, size=(2, 7, 6, 3)), 0).astype(float)
    _check_against_torch(A, 5, f, stride, "max")


def test_seed_max_pooling_4x4():
    np.testing.assert_array_equal(_pool2d(SEED_4X4, 2, 2, "max"), [[9, 2], [6, 3]])


def test_seed_average_pooling_4x4():
    """The seeds print 3.75 1.25 / 4 2 next to the max-pooling input.

    On that input the formula gives (1+3+5+6)/4 = 3.75 bottom-left; the printed 4 needs the
    third row to read 1 4 2 3, as on the lecture's average-pooling slide.
    """
    np.testing.assert_array_equal(_pool2d(SEED_4X4, 2, 2, "average"), [[3.75, 1.25], [3.75, 2]])
    lecture = SEED_4X4.copy()
    lecture[2, 1] = 4
    np.testing.assert_array_equal(_pool2d(lecture, 2, 2, "average"), [[3.75, 1.25], [4, 2]])


def test_seed_max_pooling_5x5_f3_s1():
    """The seeds give only the 3×3 output; the 5×5 input is the lecture slide's."""
    image = np.array([[1, 3, 2, 1, 3], [2, 9, 1, 1, 5], [1, 3, 2, 3, 2], [8, 3, 5, 1, 0],
                      [5, 6, 1, 2, 9]], dtype=float)
    np.testing.assert_array_equal(_pool2d(image, 3, 1, "max"),
                                  [[9, 9, 5], [9, 9, 5], [8, 6, 9]])


@pytest.mark.parametrize("mode", ["max", "average"])
def test_pooling_acts_on_each_channel_independently(mode):
    volume = np.stack([SEED_4X4, -SEED_4X4, SEED_4X4.T], axis=-1)[None]
    A, _ = pool_forward(volume, {"f": 2, "stride": 2}, mode=mode)
    assert A.shape == (1, 2, 2, 3)
    for k in range(3):
        np.testing.assert_array_equal(A[0, :, :, k], _pool2d(volume[0, :, :, k], 2, 2, mode))


def test_create_mask_from_window_marks_the_first_maximum():
    np.testing.assert_array_equal(create_mask_from_window(np.array([[1.0, 3.0], [4.0, 2.0]])),
                                  [[False, False], [True, False]])
    np.testing.assert_array_equal(create_mask_from_window(np.zeros((2, 2))),
                                  [[True, False], [False, False]])
    batched = create_mask_from_window(np.array([[[1.0, 3.0], [4.0, 2.0]], [[5, 0], [0, 5]]]))
    np.testing.assert_array_equal(batched, [[[0, 0], [1, 0]], [[1, 0], [0, 0]]])


def test_distribute_value_spreads_evenly():
    np.testing.assert_array_equal(distribute_value(2.0, (2, 2)), [[0.5, 0.5], [0.5, 0.5]])
    spread = distribute_value(np.array([9.0, 18.0]), (3, 3))
    assert spread.shape == (2, 3, 3)
    np.testing.assert_allclose(spread.sum(axis=(1, 2)), [9.0, 18.0])


@pytest.mark.parametrize("hp, mode, match", [
    ({"f": 5, "stride": 1}, "max", "exceeds the padded"),
    ({"f": 2, "stride": 0}, "max", "s must be"),
    ({"f": 2}, "max", "lacks"),
    ({"f": 2, "stride": 2}, "min", "mode must be one of"),
])
def test_pool_forward_rejects_bad_input(hp, mode, match):
    with pytest.raises(ValueError, match=match):
        pool_forward(np.zeros((1, 4, 4, 1)), hp, mode=mode)


def test_pool_backward_rejects_wrong_dA_shape():
    _, cache = pool_forward(np.zeros((1, 4, 4, 2)), {"f": 2, "stride": 2})
    with pytest.raises(ValueError, match="dA has shape"):
        pool_backward(np.zeros((1, 2, 2, 1)), cache)
