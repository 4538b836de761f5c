"""The GPU training path, checked on CPU tensors: batch augmentation, device-resident data,
the trainer=gpu / trainer=ddp configs, the speed options in fit, and the throughput benchmark."""

from __future__ import annotations

import re

import pytest
import torch
from torchvision.transforms.v2 import functional as TF

from cnnlab.augment.gpu import BatchAugment, flip_crop


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def coordinate_images(n: int, h: int, w: int) -> torch.Tensor:
    """Images whose channel 0 is row + 1 and channel 1 is column + 1 (0 only in padding)."""
    rows = torch.arange(1, h + 1).view(h, 1).expand(h, w)
    cols = torch.arange(1, w + 1).view(1, w).expand(h, w)
    return torch.stack([rows, cols]).expand(n, 2, h, w).clone()


# ---- batch augmentation --------------------------------------------------------------------------

def test_shapes_dtypes_and_layout():
    aug = BatchAugment(flip=True, crop_padding=2, brightness=0.3, contrast=0.3)
    x = torch.randint(0, 256, (5, 3, 7, 9), dtype=torch.uint8)
    out = aug(x, torch.Generator().manual_seed(0))
    assert out.shape == x.shape and out.dtype == torch.float32
    assert out.min() >= 0 and out.max() <= 1
    assert out.is_contiguous(memory_format=torch.channels_last)  # gathered on NHWC
    grey = aug(torch.rand(4, 1, 6, 6), torch.Generator().manual_seed(0))
    assert grey.shape == (4, 1, 6, 6) and grey.dtype == torch.float32
    # nothing enabled: only the uint8 → [0, 1] conversion
    assert torch.equal(BatchAugment()(x), x.float() / 255)


def test_same_seed_same_batch_other_seed_other_batch():
    aug = BatchAugment(flip=True, crop_padding=4, brightness=0.2, contrast=0.2)
    x = torch.randint(0, 256, (16, 3, 12, 12), dtype=torch.uint8)
    a = aug(x, torch.Generator().manual_seed(7))
    b = aug(x, torch.Generator().manual_seed(7))
    c = aug(x, torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_crop_windows_lie_inside_the_padded_image():
    n, h, w, p = 300, 6, 5, 3
    x = coordinate_images(n, h, w)
    aug = BatchAugment(crop_padding=p)
    params = aug.sample(n, torch.Generator().manual_seed(0))
    out = flip_crop(x, p, None, params.offsets)
    padded = torch.nn.functional.pad(x, (p, p, p, p))
    for i in range(n):
        # exactly one window of the padded image matches, and it is the one the parameters name
        hits = [(t, l) for t in range(2 * p + 1) for l in range(2 * p + 1)
                if torch.equal(out[i], padded[i, :, t:t + h, l:l + w])]
        assert hits == [tuple(params.offsets[i].tolist())]
    # per-sample offsets that reach both ends of [0, 2p] (not one shared offset)
    assert params.offsets.min() == 0 and params.offsets.max() == 2 * p
    assert len({tuple(o) for o in params.offsets.tolist()}) > 20


def test_flip_mirrors_exactly_the_drawn_samples():
    x = torch.randint(0, 256, (64, 3, 5, 7), dtype=torch.uint8)
    aug = BatchAugment(flip=True)
    params = aug.sample(len(x), torch.Generator().manual_seed(3))
    out = flip_crop(x, 0, params.mirror, None)
    assert 10 < params.mirror.sum() < 54
    for i, m in enumerate(params.mirror):
        assert torch.equal(out[i], x[i].flip(-1) if m else x[i])
    # flip and crop in one gather = crop, then flip (as torchvision RandomCrop → RandomHorizontalFlip)
    both = BatchAugment(flip=True, crop_padding=2)
    params = both.sample(len(x), torch.Generator().manual_seed(4))
    out = flip_crop(x, 2, params.mirror, params.offsets)
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    for i, (m, (t, l)) in enumerate(zip(params.mirror, params.offsets.tolist())):
        window = padded[i, :, t:t + 5, l:l + 7]
        assert torch.equal(out[i], window.flip(-1) if m else window)


@pytest.mark.parametrize("channels", [1, 3])
def test_colour_matches_torchvision_per_sample(channels):
    x = torch.rand(12, channels, 8, 8)
    aug = BatchAugment(brightness=0.4, contrast=0.5)
    params = aug.sample(len(x), torch.Generator().manual_seed(5))
    out = aug.apply(x, params)
    assert params.brightness.min() >= 0.6 and params.brightness.max() <= 1.4
    for i in range(len(x)):
        ref = TF.adjust_brightness(x[i], float(params.brightness[i]))
        ref = TF.adjust_contrast(ref, float(params.contrast[i]))
        torch.testing.assert_close(out[i], ref, atol=1e-6, rtol=1e-5)


def test_bad_parameters_raise():
    with pytest.raises(ValueError):
        BatchAugment(crop_padding=-1)
    with pytest.raises(ValueError):
        BatchAugment(brightness=1.5)


# ---- data held on the device ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def rgb_folder(tmp_path_factory):
    """A prepared RGB folder: 3 classes × 12 random 8×8 images."""
    from PIL import Image

    from cnnlab.data.prepare import SplitConfig, prepare_dataset

    g = torch.Generator().manual_seed(0)
    imgs = torch.randint(0, 256, (36, 8, 8, 3), dtype=torch.uint8, generator=g)
    items = [(f"{i:02d}", f"c{i % 3}", Image.fromarray(imgs[i].numpy(), "RGB")) for i in range(36)]
    root = tmp_path_factory.mktemp("rgb") / "prepared"
    prepare_dataset(items, root, SplitConfig(val=0.25, test=0.25), channels=3, name="rgb")
    return root


def _device_batch(dm, loader):
    return dm.on_after_batch_transfer(next(iter(loader)), 0)


def test_device_batches_equal_the_cpu_loader_batches(rgb_folder):
    from cnnlab.data.datamodule import ImageFolderDataModule

    cpu = ImageFolderDataModule(rgb_folder, (12, 12), batch_size=5)
    dev = ImageFolderDataModule(rgb_folder, (12, 12), batch_size=5, on_device=True, channels_last=True)
    name, idx = next(iter(dev.val_dataloader()))
    assert name == "val" and idx.dtype == torch.long and len(idx) == 5
    x_cpu, y_cpu = next(iter(cpu.val_dataloader()))
    x_dev, y_dev = _device_batch(dev, dev.val_dataloader())
    torch.testing.assert_close(x_dev, x_cpu, atol=1e-5, rtol=0)  # same resize, scale and normalisation
    assert torch.equal(y_dev, y_cpu) and x_dev.is_contiguous(memory_format=torch.channels_last)
    images, labels = dev.resident("val", torch.device("cpu"))
    assert images.dtype == torch.uint8 and images.shape[1:] == (3, 12, 12) and len(labels) == len(images)


def test_device_training_batches_are_augmented_and_seeded(rgb_folder):
    from cnnlab.data.datamodule import ImageFolderDataModule

    def first_train_batch():
        torch.manual_seed(11)  # seed_everything: the device generator derives from it
        dm = ImageFolderDataModule(rgb_folder, (8, 8), batch_size=6, on_device=True,
                                   batch_augment=BatchAugment(flip=True, crop_padding=2, brightness=0.3))
        name, idx = next(iter(dm.train_dataloader()))
        return idx, dm.on_after_batch_transfer((name, idx), 0), dm

    idx, (x, y), dm = first_train_batch()
    idx2, (x2, _), _ = first_train_batch()
    assert torch.equal(idx, idx2) and torch.equal(x, x2)
    images, labels = dm.resident("train", torch.device("cpu"))
    mean = torch.tensor(dm.meta["mean"]).view(1, 3, 1, 1)
    std = torch.tensor(dm.meta["std"]).view(1, 3, 1, 1)
    unaugmented = (images[idx].float() / 255 - mean) / std
    assert x.shape == unaugmented.shape and torch.equal(y, labels[idx])
    assert not torch.allclose(x, unaugmented)


def test_device_options_are_checked(rgb_folder):
    from cnnlab.data.datamodule import ImageFolderDataModule

    with pytest.raises(ValueError, match="on_device"):
        ImageFolderDataModule(rgb_folder, (8, 8), batch_augment=BatchAugment(flip=True))
    with pytest.raises(ValueError, match="batch_augment"):
        ImageFolderDataModule(rgb_folder, (8, 8), train_transform=lambda x: x, on_device=True)


# ---- configs and fit -----------------------------------------------------------------------------

def test_trainer_gpu_and_ddp_compose_and_instantiate(hydra_cfg):
    import lightning as L
    from hydra.utils import instantiate
    from lightning.pytorch.strategies import DDPStrategy

    from cnnlab.tasks.fit import speed_options, trainer_config

    gpu = hydra_cfg("trainer=gpu", "data=orl_faces")
    assert gpu.trainer.accelerator == "gpu" and gpu.trainer.precision == "bf16-mixed"
    assert speed_options(gpu) == {"channels_last": True, "compile": False, "data_on_device": True,
                                  "gpu_augment": {"flip": True, "crop_padding": 4, "brightness": 0.2,
                                                  "contrast": 0.2}}
    for digits in ("digits", "digits_0to4", "digits_5to9"):  # a mirrored digit is another digit
        assert speed_options(hydra_cfg("trainer=gpu", f"data={digits}"))["gpu_augment"]["flip"] is False
    ddp = hydra_cfg("trainer=ddp", "data=orl_faces")
    assert ddp.trainer.strategy == "ddp" and ddp.trainer.num_nodes == 1 and ddp.trainer.devices == "auto"
    assert ddp.trainer.precision == "bf16-mixed" and speed_options(ddp) == speed_options(gpu)  # inherited

    kwargs = trainer_config(hydra_cfg("trainer=gpu", "trainer.accelerator=cpu"))
    assert "speed" not in kwargs
    trainer = instantiate(kwargs, logger=False)
    assert isinstance(trainer, L.Trainer) and trainer.precision == "bf16-mixed"
    trainer = instantiate(trainer_config(hydra_cfg("trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2",
                                                   "trainer.num_nodes=1")), logger=False)
    assert isinstance(trainer.strategy, DDPStrategy) and trainer.num_devices == 2 and trainer.world_size == 2


def test_trainer_cpu_keeps_the_plain_path(hydra_cfg):
    from omegaconf import OmegaConf

    from cnnlab.tasks.fit import speed_options, trainer_config

    cfg = hydra_cfg("trainer=cpu")
    assert not any(speed_options(cfg).values())
    assert trainer_config(cfg) == OmegaConf.to_container(cfg.trainer)  # Lightning gets all of it


def test_unknown_speed_option_is_refused(hydra_cfg):
    from cnnlab.tasks.fit import speed_options

    with pytest.raises(KeyError, match="fast"):
        speed_options(hydra_cfg("trainer=gpu", "+trainer.speed.fast=true"))


@pytest.mark.parametrize("trainer", ["gpu", "ddp"])
def test_face_encoder_trainer_takes_the_trainer_config_path(hydra_cfg, caplog, trainer):
    import lightning as L
    from hydra.utils import instantiate

    from cnnlab.face.training.train import trainer_kwargs
    from cnnlab.stages._app import compose

    with caplog.at_level("WARNING", logger="cnnlab.tasks.fit"):
        from conftest import REPO

        kwargs = trainer_kwargs(compose(f"trainer={trainer}", "face.train.max_epochs=3", conf=REPO / "conf",
                                        config_name="faces"))
    assert "speed" not in kwargs and kwargs["accelerator"] == "gpu" and kwargs["precision"] == "bf16-mixed"
    assert kwargs["max_epochs"] == 3 and kwargs["use_distributed_sampler"] is False
    assert kwargs.get("strategy", "auto") == ("ddp" if trainer == "ddp" else "auto")
    assert "data_on_device" in caplog.text  # the dropped options are named, not silently lost
    kwargs.update(accelerator="cpu", devices=1)  # no GPU here: Lightning still has to accept the rest
    assert isinstance(instantiate(kwargs, logger=False), L.Trainer)


def test_finetune_trainer_takes_the_trainer_config_path(hydra_cfg, tmp_path, caplog):
    from cnnlab.tasks.finetune.train import _trainer

    with caplog.at_level("WARNING", logger="cnnlab.tasks.fit"):
        trainer, _ = _trainer(hydra_cfg("trainer=gpu", "trainer.accelerator=cpu"), tmp_path, [])
    assert trainer.precision == "bf16-mixed" and trainer.max_epochs == 30
    assert "data_on_device" in caplog.text and "fine-tuning" in caplog.text  # ignored, and said so
    with pytest.raises(ValueError, match="one device"):
        _trainer(hydra_cfg("trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2"), tmp_path, [])


def test_fit_with_trainer_gpu_options_on_cpu(tmp_path, hydra_cfg, rgb_folder):
    from cnnlab.tasks.classifier import load_checkpoint
    from cnnlab.tasks.fit import build, fit

    cfg = hydra_cfg("trainer=gpu", "trainer.accelerator=cpu", "trainer.precision=32-true", "trainer.max_epochs=2",
                    "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false",
                    "model=lenet5", "data.image_size=32", "batch_size=8", f"paths.prepared={rgb_folder}",
                    f"paths.run={tmp_path / 'run'}")
    module, dm = build(cfg)
    assert dm.on_device and dm.channels_last and dm.train_transform is None and dm.batch_augment.crop_padding == 4
    conv = next(m for m in module.model.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    metrics = fit(cfg)
    assert metrics["epochs"] == 2 and 0 <= metrics["best_val_acc"] <= 1
    model, hp = load_checkpoint(tmp_path / "run" / "best.ckpt")  # channels_last weights load as usual
    assert hp["in_chans"] == 3 and model(torch.zeros(1, 3, 32, 32)).shape == (1, 3)


def test_compile_keeps_checkpoint_keys(hydra_cfg, rgb_folder):
    from cnnlab.tasks.fit import build

    common = ["trainer.accelerator=cpu", "model=lenet5", "data.image_size=32", f"paths.prepared={rgb_folder}"]
    plain, _ = build(hydra_cfg("trainer=gpu", *common))
    compiled, _ = build(hydra_cfg("trainer=gpu", "trainer.speed.compile=true", *common))
    assert compiled.model._compiled_call_impl is not None and plain.model._compiled_call_impl is None
    assert list(compiled.state_dict()) == list(plain.state_dict())


@pytest.mark.parametrize("env, zero", [({}, True), ({"LOCAL_RANK": "1"}, False), ({"NODE_RANK": "1"}, False),
                                       ({"LOCAL_RANK": "0", "NODE_RANK": "0"}, True), ({"RANK": "3"}, False),
                                       ({"SLURM_PROCID": "0"}, True), ({"SLURM_PROCID": "2"}, False),
                                       ({"SLURM_PROCID": "0", "LOCAL_RANK": "1"}, False),  # Lightning in salloc
                                       ({"RANK": "0", "LOCAL_RANK": "0"}, True)])
def test_launch_rank_zero(monkeypatch, env, zero):
    from cnnlab.tasks.fit import is_launch_rank_zero

    for key in ("RANK", "SLURM_PROCID", "LOCAL_RANK", "NODE_RANK"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert is_launch_rank_zero() is zero


# ---- throughput benchmark ------------------------------------------------------------------------

def test_throughput_benchmark_cpu_smoke(tmp_path):
    from cnnlab.bench.throughput import main

    out = tmp_path / "bench.md"
    assert main(["--device", "cpu", "--steps", "3", "--batch-size", "8", "--images", "40", "--warmup", "1",
                 "--output", str(out)]) == 0
    text = out.read_text()
    rows = re.findall(r"^\| (on: [^|]+|off) \| ([\d,]+) \| ([\d,]+) \| ([\d.]+) \|$", text, re.M)
    assert [r[0].split(":")[0] for r in rows] == ["on", "off"]
    for _, plain, ours, ratio in rows:
        plain, ours, ratio = float(plain.replace(",", "")), float(ours.replace(",", "")), float(ratio)
        assert plain > 0 and ours > 0
        # the ratio is of the unrounded rates; the printed rates are rounded to whole images/s
        assert (ours - 0.5) / (plain + 0.5) - 5e-4 <= ratio <= (ours + 0.5) / (plain - 0.5) + 5e-4
    assert "still to be measured" in text and "<!-- bench:throughput -->" in text


# ---- start-up benchmark and lazy imports ---------------------------------------------------------

def test_startup_helpers_find_function_level_imports_and_parse_importtime():
    from conftest import REPO

    from cnnlab.bench.startup import parse_importtime, work_modules

    stages = REPO / "src" / "cnnlab" / "stages"
    train = work_modules(stages / "train.py")
    assert {"cnnlab.tasks.fit", "cnnlab.tasks.callbacks", "cnnlab.stages._app", "omegaconf"} <= set(train)
    assert "cnnlab.data.prepare" in work_modules(stages / "prepare.py")  # imported inside run()
    sample = "\n".join([
        "import time: self [us] | cumulative | imported package",
        "import time:       100 |        100 |     _io",
        "import time:      2000 |    1500000 |   torch",
        "import time:       300 |    1600000 | lightning",
        "import time:        50 |         50 | json",
    ])
    total, packages = parse_importtime(sample)
    assert total == pytest.approx(1.60005) and packages["torch"] == pytest.approx(1.5)
    assert packages["lightning"] == pytest.approx(1.6) and "_io" not in packages


@pytest.mark.parametrize("modules, absent", [
    (["cnnlab.stages.prepare"], ["numpy", "PIL", "sklearn", "torch"]),  # `prepare --help` stays light
    (["cnnlab.stages.select", "cnnlab.evaluate.select"], ["torch", "lightning", "torchmetrics"]),
    (["cnnlab.cli"], ["torch", "lightning", "hydra"]),
])
def test_entry_points_do_not_import_what_they_do_not_need(modules, absent):
    import subprocess
    import sys

    code = "; ".join(f"import {m}" for m in modules) + "; import sys; print(sorted(sys.modules))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    for name in absent:
        assert f"'{name}'" not in loaded, f"importing {modules} loads {name}"
