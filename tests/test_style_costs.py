"""The style-transfer costs equal direct computations of the seeds' formulas; gradients pass gradcheck."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cnnlab.style.costs import content_cost, gram, layer_style_cost, style_cost, total_cost


def _acts(seed, c=3, h=4, w=5):
    return torch.randn(c, h, w, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_content_cost_both_normalisations():
    a_C, a_G = _acts(0), _acts(1)
    diff = (a_C - a_G).numpy()
    direct = sum(diff[k, i, j] ** 2 for k in range(3) for i in range(4) for j in range(5))
    assert content_cost(a_C, a_G).item() == pytest.approx(0.5 * direct)
    assert content_cost(a_C, a_G, norm="assignment").item() == pytest.approx(direct / (4 * 4 * 5 * 3))
    assert content_cost(a_C[None], a_G[None]).item() == pytest.approx(0.5 * direct)  # (1, C, H, W) too
    assert content_cost(a_C, a_C).item() == 0
    with pytest.raises(ValueError, match="content_norm"):
        content_cost(a_C, a_G, norm="l1")


def test_gram_is_the_sum_over_positions():
    a = _acts(2).numpy()
    direct = np.array([[sum(a[k, i, j] * a[kk, i, j] for i in range(4) for j in range(5)) for kk in range(3)]
                       for k in range(3)])
    np.testing.assert_allclose(gram(torch.from_numpy(a)).numpy(), direct, rtol=1e-12)


def test_layer_style_cost_direct_and_combined():
    a_S, a_G = _acts(3), _acts(4)
    G_S, G_G = gram(a_S).numpy(), gram(a_G).numpy()
    direct = sum((G_S[k, kk] - G_G[k, kk]) ** 2 for k in range(3) for kk in range(3)) / (2 * 4 * 5 * 3) ** 2
    assert layer_style_cost(a_S, a_G).item() == pytest.approx(direct)
    # a style image of another size: the Gram matrix is n_C × n_C all the same
    assert layer_style_cost(_acts(5, h=7, w=2), a_G).item() > 0
    b_S, b_G = _acts(6, c=2, h=3, w=3), _acts(7, c=2, h=3, w=3)
    J = style_cost({"a": a_S, "b": b_S}, {"a": a_G, "b": b_G}, {"a": 0.2, "b": 0.8})
    assert J.item() == pytest.approx(0.2 * direct + 0.8 * layer_style_cost(b_S, b_G).item())
    assert total_cost(torch.tensor(2.0), torch.tensor(3.0)).item() == 10 * 2 + 40 * 3


@pytest.mark.parametrize("fn", [
    lambda g: content_cost(_acts(0), g),
    lambda g: content_cost(_acts(0), g, norm="assignment"),
    lambda g: gram(g),
    lambda g: layer_style_cost(_acts(1), g),
    lambda g: total_cost(content_cost(_acts(0), g), style_cost({"l": _acts(1)}, {"l": g}, {"l": 0.2})),
], ids=["content_seeds", "content_assignment", "gram", "layer_style", "total"])
def test_gradients(fn):
    g = _acts(9).requires_grad_(True)
    assert torch.autograd.gradcheck(fn, (g,))


def test_bad_shapes_are_errors():
    with pytest.raises(ValueError, match="differ in shape"):
        content_cost(_acts(0), _acts(1, h=3))
    with pytest.raises(ValueError, match="one image"):
        gram(torch.zeros(2, 3, 4, 4))
