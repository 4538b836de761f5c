"""cnnlab.ops convolution against PyTorch, scipy, the course's loops and the seeds' examples."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.signal
import torch
import torch.nn.functional as F

from cnnlab.ops import conv_backward, conv_forward, conv_single_step, convolve2d, zero_pad

TOL = dict(rtol=1e-6, atol=1e-6)

# The seeds' 6×6 example image (003, "Vertical edge detection") and the vertical-edge filter.
SEED_IMAGE = np.array([[3, 0, 1, 2, 7, 4],
                       [1, 5, 8, 9, 3, 1],
                       [2, 7, 2, 5, 1, 3],
                       [0, 1, 3, 1, 7, 8],
                       [4, 2, 1, 6, 2, 8],
                       [2, 4, 5, 2, 3, 9]], dtype=float)
VERTICAL = np.array([[1, 0, -1]] * 3, dtype=float)
HORIZONTAL = VERTICAL.T.copy()


def _nchw(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a.transpose(0, 3, 1, 2)))


def _nhwc(t: torch.Tensor) -> np.ndarray:
    return t.detach().numpy().transpose(0, 2, 3, 1)


def _random_cases(n: int, seed: int = 0) -> list[dict]:
    """Random (shape, f, stride, pad) combinations, including even f and strides that skip."""
    rng = np.random.default_rng(seed)
    cases = []
    for _ in range(n):
        f, s, p = int(rng.integers(1, 6)), int(rng.integers(1, 4)), int(rng.integers(0, 3))
        lo = max(1, f - 2 * p)
        cases.append(dict(m=int(rng.integers(1, 4)), n_H=int(rng.integers(lo, lo + 7)),
                          n_W=int(rng.integers(lo, lo + 7)), c_prev=int(rng.integers(1, 5)),
                          c=int(rng.integers(1, 5)), f=f, stride=s, pad=p,
                          seed=int(rng.integers(2**31))))
    return cases


CASES = _random_cases(12)


def _case_arrays(case: dict):
    rng = np.random.default_rng(case["seed"])
    A = rng.standard_normal((case["m"], case["n_H"], case["n_W"], case["c_prev"]))
    W = rng.standard_normal((case["f"], case["f"], case["c_prev"], case["c"]))
    b = rng.standard_normal((1, 1, 1, case["c"]))
    return rng, A, W, b


def _torch_conv(A, W, b, stride, pad):
    A_t = _nchw(A).requires_grad_()
    W_t = torch.from_numpy(np.ascontiguousarray(W.transpose(3, 2, 0, 1))).requires_grad_()
    b_t = torch.from_numpy(b.reshape(-1).copy()).requires_grad_()
    return A_t, W_t, b_t, F.conv2d(A_t, W_t, b_t, stride=stride, padding=pad)


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"f{c['f']}s{c['stride']}p{c['pad']}")
def test_conv_forward_backward_match_torch(case):
    rng, A, W, b = _case_arrays(case)
    hp = {"stride": case["stride"], "pad": case["pad"]}
    Z, cache = conv_forward(A, W, b, hp)
    A_t, W_t, b_t, Z_t = _torch_conv(A, W, b, case["stride"], case["pad"])
    np.testing.assert_allclose(Z, _nhwc(Z_t), **TOL)

    dZ = rng.standard_normal(Z.shape)
    Z_t.backward(_nchw(dZ))
    dA_prev, dW, db = conv_backward(dZ, cache)
    np.testing.assert_allclose(dA_prev, _nhwc(A_t.grad), **TOL)
    np.testing.assert_allclose(dW, W_t.grad.numpy().transpose(2, 3, 1, 0), **TOL)
    np.testing.assert_allclose(db, b_t.grad.numpy().reshape(b.shape), **TOL)
    assert (dA_prev.shape, dW.shape, db.shape) == (A.shape, W.shape, b.shape)


def test_conv_forward_matches_course_loops():
    """The assignment's four nested loops around conv_single_step give the same Z."""
    _, A, W, b = _case_arrays(dict(m=2, n_H=5, n_W=7, c_prev=3, c=2, f=3, stride=2, pad=1,
                                   seed=7))
    s, p, f = 2, 1, 3
    Z, _ = conv_forward(A, W, b, {"stride": s, "pad": p})
    A_pad = zero_pad(A, p)
    expected = np.zeros_like(Z)
    for i in range(Z.shape[0]):
        for h in range(Z.shape[1]):
            for w in range(Z.shape[2]):
                for c in range(Z.shape[3]):
                    a_slice = A_pad[i, h * s:h * s + f, w * s:w * s + f, :]
                    expected[i, h, w, c] = conv_single_step(a_slice, W[..., c], b[..., c])
    np.testing.assert_allclose(Z, expected, **TOL)


def test_zero_pad_pads_only_height_and_width():
    x = np.random.default_rng(1).standard_normal((4, 3, 3, 2))
    x_pad = zero_pad(x, 3)
    assert x_pad.shape == (4, 9, 9, 2)
    np.testing.assert_array_equal(x_pad[:, 3:6, 3:6, :], x)
    x_pad[:, 3:6, 3:6, :] = 0
    assert not x_pad.any()


def test_conv_single_step_is_weighted_sum_plus_bias():
    rng = np.random.default_rng(2)
    a, W = rng.standard_normal((4, 4, 3)), rng.standard_normal((4, 4, 3))
    expected = sum(a[i, j, k] * W[i, j, k] for i in range(4) for j in range(4) for k in range(3))
    assert conv_single_step(a, W, np.array([[[0.5]]])) == pytest.approx(expected + 0.5)


def test_seed_vertical_edge_matrix_example():
    expected = [[-5, -4, 0, 8], [-10, -2, 2, 3], [0, -2, -4, -7], [-3, -2, -3, -16]]
    np.testing.assert_array_equal(convolve2d(SEED_IMAGE, VERTICAL), expected)


@pytest.mark.parametrize("bright_left, sign", [(True, 1), (False, -1)])
def test_seed_vertical_edge_step_images(bright_left, sign):
    half = np.array([10, 10, 10, 0, 0, 0], dtype=float)
    image = np.tile(half if bright_left else half[::-1], (6, 1))
    np.testing.assert_array_equal(convolve2d(image, VERTICAL),
                                  sign * np.tile([0, 30, 30, 0], (4, 1)))


def test_seed_horizontal_edge_example():
    image = np.zeros((6, 6))
    image[:3, :3] = image[3:, 3:] = 10
    expected = [[0, 0, 0, 0], [30, 10, -10, -30], [30, 10, -10, -30], [0, 0, 0, 0]]
    np.testing.assert_array_equal(convolve2d(image, HORIZONTAL), expected)


def test_seed_strided_7x7_example():
    """7×7 ∗ 3×3, stride 2 → 3×3 (003, "Strided convolutions").

    The seeds show 91, 100, 83 / 69 ...; the lecture slide's full answer is
    91 100 83 / 69 91 127 / 44 72 74, but the formula on its own input gives 88 for the third
    and 117 for the sixth entry (e.g. 6·3+2·4+9·4+7·1+4·0+3·2−8+9·0+7·3 = 88), so we trust it.
    """
    image = np.array([[2, 3, 7, 4, 6, 2, 9], [6, 6, 9, 8, 7, 4, 3], [3, 4, 8, 3, 8, 9, 7],
                      [7, 8, 3, 6, 6, 3, 4], [4, 2, 1, 8, 3, 4, 6], [3, 2, 4, 1, 9, 8, 3],
                      [0, 1, 3, 9, 2, 1, 4]], dtype=float)
    kernel = np.array([[3, 4, 4], [1, 0, 2], [-1, 0, 3]], dtype=float)
    out = convolve2d(image, kernel, stride=2)
    np.testing.assert_array_equal(out, [[91, 100, 88], [69, 91, 117], [44, 72, 74]])
    # The window the seeds mark with superscripts (rows 2-4, columns 2-4) is output (1, 1).
    assert out[1, 1] == np.sum(image[2:5, 2:5] * kernel)


def test_rgb_filter_on_red_channel_only_is_2d_edge_detection():
    """6×6×3 ∗ 3×3×3 → 4×4; a filter that is zero on G and B sees only the red channel."""
    rgb = np.stack([SEED_IMAGE, SEED_IMAGE.T, -SEED_IMAGE], axis=-1)[None]
    W = np.zeros((3, 3, 3, 2))
    W[:, :, 0, 0] = VERTICAL
    W[:, :, :, 1] = HORIZONTAL[..., None]
    Z, _ = conv_forward(rgb, W, np.zeros((1, 1, 1, 2)), {"stride": 1, "pad": 0})
    assert Z.shape == (1, 4, 4, 2)
    np.testing.assert_allclose(Z[0, :, :, 0], convolve2d(SEED_IMAGE, VERTICAL))
    expected = sum(convolve2d(rgb[0, :, :, k], HORIZONTAL) for k in range(3))
    np.testing.assert_allclose(Z[0, :, :, 1], expected)


@pytest.mark.parametrize("kshape, stride, pad", [((3, 3), 1, 0), ((2, 3), 1, 1),
                                                 ((3, 2), 2, 0), ((4, 4), 3, 2)])
def test_convolve2d_matches_scipy(kshape, stride, pad):
    rng = np.random.default_rng(3)
    image, kernel = rng.standard_normal((9, 8)), rng.standard_normal(kshape)
    padded = np.pad(image, pad)
    corr = scipy.signal.correlate2d(padded, kernel, mode="valid")[::stride, ::stride]
    conv = scipy.signal.convolve2d(padded, kernel, mode="valid")[::stride, ::stride]
    np.testing.assert_allclose(convolve2d(image, kernel, stride=stride, pad=pad), corr, **TOL)
    np.testing.assert_allclose(convolve2d(image, kernel, "convolution", stride, pad), conv, **TOL)


def test_true_convolution_is_cross_correlation_with_flipped_kernel():
    kernel = np.array([[3, 4, 5], [1, 0, 2], [-1, 9, 7]], dtype=float)  # the course's note
    flipped = np.array([[7, 9, -1], [2, 0, 1], [5, 4, 3]], dtype=float)
    conv = convolve2d(SEED_IMAGE, kernel, mode="convolution")
    np.testing.assert_array_equal(conv, convolve2d(SEED_IMAGE, flipped))
    assert not np.array_equal(conv, convolve2d(SEED_IMAGE, kernel))
    # A kernel symmetric under the double flip gives the same result either way.
    symmetric = np.array([[1, 2, 1], [0, 5, 0], [1, 2, 1]], dtype=float)
    np.testing.assert_array_equal(convolve2d(SEED_IMAGE, symmetric, mode="convolution"),
                                  convolve2d(SEED_IMAGE, symmetric))


@pytest.mark.parametrize("A_shape, W_shape, b_shape, hp, match", [
    ((1, 4, 4, 3), (5, 5, 3, 2), (1, 1, 1, 2), {"stride": 1, "pad": 0}, "exceeds the padded"),
    ((1, 4, 4, 3), (3, 3, 2, 2), (1, 1, 1, 2), {"stride": 1, "pad": 0}, "input channels"),
    ((1, 4, 4, 3), (3, 3, 3, 2), (2,), {"stride": 1, "pad": 0}, "b must have shape"),
    ((1, 4, 4, 3), (3, 2, 3, 2), (1, 1, 1, 2), {"stride": 1, "pad": 0}, "square filter"),
    ((4, 4, 3), (3, 3, 3, 2), (1, 1, 1, 2), {"stride": 1, "pad": 0}, "4-D"),
    ((1, 4, 4, 3), (3, 3, 3, 2), (1, 1, 1, 2), {"stride": 1}, "lacks"),
    ((1, 4, 4, 3), (3, 3, 3, 2), (1, 1, 1, 2), {"stride": 0, "pad": 0}, "s must be"),
    ((1, 4, 4, 3), (3, 3, 3, 2), (1, 1, 1, 2), {"stride": 1, "pad": -1}, "p must be"),
])
def test_conv_forward_rejects_bad_input(A_shape, W_shape, b_shape, hp, match):
    with pytest.raises(ValueError, match=match):
        conv_forward(np.zeros(A_shape), np.zeros(W_shape), np.zeros(b_shape), hp)


def test_conv_backward_rejects_wrong_dZ_shape():
    _, cache = conv_forward(np.zeros((1, 5, 5, 1)), np.zeros((3, 3, 1, 2)),
                            np.zeros((1, 1, 1, 2)), {"stride": 1, "pad": 0})
    with pytest.raises(ValueError, match="dZ has shape"):
        conv_backward(np.zeros((1, 3, 3, 1)), cache)


def test_convolve2d_rejects_bad_input():
    with pytest.raises(ValueError, match="mode must be one of"):
        convolve2d(SEED_IMAGE, VERTICAL, mode="conv")
    with pytest.raises(ValueError, match="exceeds the padded"):
        convolve2d(SEED_IMAGE[:2], VERTICAL)
    with pytest.raises(ValueError, match="2-D"):
        convolve2d(SEED_IMAGE[None], VERTICAL)
    with pytest.raises(ValueError, match="pad must be"):
        zero_pad(SEED_IMAGE[None, ..., None], -1)
