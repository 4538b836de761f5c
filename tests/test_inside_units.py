"""Top-9 patches per unit: the right images, the right place, the receptive field's size; galleries; the CLI."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch
import torch.nn as nn
from PIL import Image

from conftest import REPO, run, run_env
from cnnlab.inside.gallery import mosaic
from cnnlab.inside.network import Network
from cnnlab.inside.units import top_patches

from test_style_features import classifier_ckpt


class Detector(nn.Module):
    """conv 3×3 matching a bright '+' (unit 0) or its negative (unit 1), then a 2×2/2 pool and a 3×3 conv."""

    def __init__(self):
        super().__init__()
        plus = torch.tensor([[0.0, 1, 0], [1, 1, 1], [0, 1, 0]]) - 5 / 9
        self.conv = nn.Conv2d(1, 2, 3, padding=1, bias=False)
        self.conv.weight.data = torch.stack([plus, -plus])[:, None]
        self.pool = nn.MaxPool2d(2, 2)
        self.deep = nn.Conv2d(2, 1, 3, padding=1)

    def forward(self, x):
        return self.deep(self.pool(torch.relu(self.conv(x))))


def _images(n=12, size=16):
    """Image i has a '+' of brightness (i + 1)/n centred at a known place; the rest is dark."""
    imgs = torch.zeros(n, 1, size, size)
    centres = []
    for i in range(n):
        r, c = 2 + (3 * i) % 11, 3 + (5 * i) % 10
        v = (i + 1) / n
        imgs[i, 0, r, c - 1:c + 2] = v
        imgs[i, 0, r - 1:r + 2, c] = v
        centres.append((r, c))
    return imgs, centres


def test_top_patches_find_the_pattern_where_it_is():
    imgs, centres = _images()
    net = Network(Detector().eval(), 1, (16, 16), [0.0], [1.0], "classifier")
    conv, deep = top_patches(net, ["conv", "deep"], imgs, units=2, k=9, progress=False)
    assert conv.field.size == (3, 3) and deep.field.size == (8, 8)  # 3; pool 2/2: 3 + 1 = 4 at stride 2; 3×3: 4 + 2·2 = 8
    # unit 0 prefers the brightest '+': images 11, 10, ..., 3 in that order, each found at its centre
    assert conv.images[0].tolist() == list(range(11, 2, -1))
    assert np.all(np.diff(conv.values[0]) <= 0)
    for r, img in enumerate(conv.images[0]):
        cr, cc = centres[img]
        assert tuple(conv.boxes[0, r]) == (cr - 1, cc - 1, cr + 2, cc + 2)
        patch = conv.patches[0][r][..., 0]
        assert patch.shape == (3, 3) and abs(int(patch[1, 1]) - 255 * (img + 1) / 12) <= 0.5 and patch[0, 0] == 0
    # a deeper layer's patch is its (bigger) receptive field and holds the whole '+'
    assert deep.patches[0][0].shape == (8, 8, 3)
    img, (t, l, _, _) = deep.images[0][0], deep.boxes[0, 0]
    cr, cc = centres[img]
    assert t <= cr - 1 and l <= cc - 1 and cr + 2 <= t + 8 and cc + 2 <= l + 8


def test_gallery_patches_grow_with_depth():
    imgs, _ = _images()
    net = Network(Detector().eval(), 1, (16, 16), [0.0], [1.0], "classifier")
    conv, deep = top_patches(net, ["conv", "deep"], imgs, units=2, k=9, progress=False)
    a, b = mosaic(conv)[0], mosaic(deep)[0]
    assert b.shape[0] > a.shape[0] and b.shape[1] > a.shape[1]


def test_too_few_images_and_unknown_layers():
    imgs, _ = _images(n=5)
    net = Network(Detector().eval(), 1, (16, 16), [0.0], [1.0], "classifier")
    with pytest.raises(ValueError, match="at least 9"):
        top_patches(net, ["conv"], imgs, progress=False)
    with pytest.raises(KeyError, match="conv, deep"):
        top_patches(net, ["conv2"], _images()[0], progress=False)


@pytest.mark.slow  # a subprocess (~15 s); make test's tiny pipeline runs the visualise stage anyway
def test_cli_draws_a_gallery_per_layer(tmp_path):
    ckpt = classifier_ckpt(tmp_path / "lenet.ckpt")
    data = tmp_path / "images" / "test"
    rng = np.random.default_rng(0)
    for label in "ab":
        (data / label).mkdir(parents=True)
        for i in range(6):
            Image.fromarray(rng.integers(0, 255, (32, 32), dtype=np.uint8)).save(data / label / f"{i}.png")
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "cnnlab.cli", "visualise", "--model", str(ckpt), "--data", str(data),
           "--layers", "features.0", "features.3", "--units", "4", "--out", str(out)]
    run(cmd, REPO, run_env(tmp_path))
    folder = out / "images" / tmp_path.name  # <data set>/<model>: "images" (test is a split), the ckpt's folder
    summary = json.loads((folder / "units.json").read_text())
    assert summary["images"] == 12 and list(summary["layers"]) == ["features.0", "features.3"]
    assert summary["layers"]["features.3"]["receptive_field"] == [14, 14]
    assert len(summary["layers"]["features.0"]["top_images"][0]) == 9
    for name in ("features.0.png", "features.3.png"):
        assert Image.open(folder / name).size[0] > 200

    res = run(cmd[:-4] + ["--layers", "features.9", "--out", str(tmp_path / "none")], REPO, run_env(tmp_path),
              check=False)
    assert res.returncode == 1 and "features.9" in res.stderr and "features.0, features.3" in res.stderr
    assert not (tmp_path / "none").exists()
