"""Hand-engineered baselines on the embedded ORL faces, scored by the face metrics."""

from pathlib import Path

import numpy as np
import pytest

from cnnlab.face.evaluation.baselines import BASELINES, LBPHistograms, RawPixels, _uniform_table, lbp_codes, load_gray
from cnnlab.face.evaluation.metrics import one_shot_rank1

ORL = Path(__file__).resolve().parents[1] / "data" / "raw" / "orl_faces"


@pytest.fixture(scope="module")
def orl():
    """Training people s1..s12, held-out people s13..s20 (as the identity split holds people out)."""
    if not (ORL / "s20").is_dir():
        pytest.skip("data/raw/orl_faces is not present")

    def load(people):
        paths = [ORL / f"s{p}" / f"{i}.pgm" for p in people for i in range(1, 11)]
        return load_gray(paths), np.repeat([f"s{p}" for p in people], 10)

    return load(range(1, 13)), load(range(13, 21))


def test_every_baseline_fits_on_training_people_and_beats_chance_on_new_ones(orl):
    (x_tr, y_tr), (x_te, y_te) = orl
    assert x_tr.shape == (120, 112, 92) and 0.0 <= x_tr.min() and x_tr.max() <= 1.0
    chance = 1 / 8
    scores = {}
    for name, cls in BASELINES.items():
        emb = cls().fit(x_tr, y_tr).embed(x_te)
        assert emb.dtype == np.float32 and len(emb) == 80 and np.isfinite(emb).all()
        scores[name] = one_shot_rank1(emb, y_te)
    assert all(s > 2 * chance for s in scores.values()), scores
    assert scores["fisherfaces"] > 3 * chance, scores
    fisher = BASELINES["fisherfaces"](n_pca=30).fit(x_tr, y_tr)
    assert fisher.pca_.n_components_ == 30 and fisher.embed(x_te).shape[1] == 11   # c − 1 axes
    assert BASELINES["fisherfaces"]().fit(x_tr, y_tr).pca_.n_components_ == 120 - 12   # n − c


def test_lbp_codes_match_the_definition():
    img = np.random.default_rng(0).integers(0, 5, (6, 7)).astype(np.float32)   # ties on purpose
    codes = lbp_codes(img)
    offsets = [(-1, -1), (-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1)]
    for y in range(1, 5):
        for x in range(1, 6):
            expected = sum(1 << b for b, (dy, dx) in enumerate(offsets) if img[y + dy, x + dx] >= img[y, x])
            assert codes[y - 1, x - 1] == expected


def test_uniform_lbp_has_58_uniform_patterns_and_unit_norm_histograms():
    table = _uniform_table()
    assert len(set(table.tolist())) == 59 and np.sum(table < 58) == 58
    assert table[0] != 58 and table[0b00011100] != 58 and table[0b01010000] == 58
    img = np.random.default_rng(1).integers(0, 256, (2, 30, 28)).astype(np.uint8)
    emb = LBPHistograms(grid=(3, 4)).fit(img, [0, 1]).embed(img)
    assert emb.shape == (2, 3 * 4 * 59)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-6)


def test_raw_pixels_refuse_another_image_size():
    model = RawPixels().fit(np.zeros((2, 4, 5)), [0, 1])
    np.testing.assert_allclose(model.embed(np.ones((1, 4, 5), np.uint8)), np.full((1, 20), 1 / 255), rtol=1e-6)
    with pytest.raises(ValueError, match="one size"):
        model.embed(np.zeros((1, 5, 4)))
