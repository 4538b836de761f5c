"""Every conf/augment policy composes, instantiates and runs on grey and RGB uint8 images."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import REPO
from hydra.utils import instantiate

from cnnlab.augment import PCAColour, save_pca_colour
from cnnlab.augment.pca import iter_transforms

POLICIES = sorted(p.stem for p in (REPO / "conf" / "augment").glob("*.yaml"))
IDENTITY = {("none", 1), ("none", 3), ("pca_colour", 1)}  # PCA colour leaves grey images alone


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def test_the_course_policies_exist():
    assert {"none", "affine", "light", "standard", "heavy", "pca_colour", "faces", "digits"} <= set(POLICIES)


@pytest.fixture(scope="module")
def policies(tmp_path_factory) -> dict:
    """Every policy, composed from the real config; PCA colour reads a 3-channel decomposition."""
    from hydra import compose, initialize_config_dir

    tmp = tmp_path_factory.mktemp("pca")
    save_pca_colour(tmp / "pca_colour.json", np.array([0.3, 0.05, 0.01]), np.eye(3))
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        return {name: instantiate(compose("config", [f"augment={name}", f"++paths.augmented={tmp}"]).augment)
                for name in POLICIES}


@pytest.mark.parametrize("name", POLICIES)
@pytest.mark.parametrize("channels", [1, 3])
def test_policy_runs_on_uint8_images(policies, name, channels):
    policy = policies[name]
    x = torch.randint(0, 256, (channels, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(7)
    y = policy(x)
    torch.manual_seed(7)
    assert torch.equal(policy(x), y), "not deterministic under torch.manual_seed"
    assert y.shape == x.shape and y.dtype == torch.uint8
    if (name, channels) not in IDENTITY:
        outs = set()
        for seed in range(4):
            torch.manual_seed(seed)
            outs.add(policy(x).numpy().tobytes())
        assert len(outs) > 1, f"augment={name} never changes the image"


def test_pca_policies_read_the_stage_output_lazily(hydra_cfg, tmp_path):
    for name in ("pca_colour", "heavy"):
        cfg = hydra_cfg(f"augment={name}", "data=orl_faces", f"++paths.augmented={tmp_path}/orl_faces")
        policy = instantiate(cfg.augment)  # composes before the file exists
        pca = [t for t in iter_transforms(policy) if isinstance(t, PCAColour)]
        assert [t.path for t in pca] == [f"{tmp_path}/orl_faces/pca_colour.json"]
        grey = torch.zeros(1, 32, 32, dtype=torch.uint8)
        assert policy(grey).shape == grey.shape
        with pytest.raises(FileNotFoundError, match=f"{tmp_path}/orl_faces/pca_colour.json"):
            policy(torch.zeros(3, 32, 32, dtype=torch.uint8))


def test_policies_mirror_only_where_mirroring_is_safe(policies):
    from torchvision.transforms import v2

    flips = {name: {type(t) for t in iter_transforms(policy)} & {v2.RandomHorizontalFlip, v2.RandomVerticalFlip}
             for name, policy in policies.items()}
    assert flips["digits"] == flips["affine"] == set(), "a mirrored digit is another digit or none"
    assert flips["faces"] == {v2.RandomHorizontalFlip}, "faces: left-right mirroring only"
