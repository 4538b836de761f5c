"""Fine-tuning: sources, bad sources, few-shot data, cached features, the stage and the comparison table."""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
import torchvision
from conftest import REPO

from cnnlab.data.datamodule import read_prepared
from cnnlab.data.images import DataError
from cnnlab.data.prepare import SplitConfig, digits_source, prepare_dataset
from cnnlab.tasks.classifier import Classifier, load_checkpoint
from cnnlab.tasks.finetune import (FreezeSchedule, collect_runs, comparison_table, dataset_sha256, few_shot, finetune,
                                   fit_cached_head, fit_through, load_source, prepare, save_classifier, trunk_blocks,
                                   write_comparison)
from cnnlab.tasks.fit import model_kwargs

# Until conf/config.yaml lists the finetune group in its defaults, it has to be appended.
FT = "finetune" if re.search(r"^\s*- finetune:", (REPO / "conf" / "config.yaml").read_text(), re.M) else "+finetune"
QUIET = ["num_workers=0", "batch_size=8", "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false"]


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, Path]:
    """Digits 0-4 (source), 5-9 (target, grey and RGB): 12 images per class, prepared for real."""
    root = tmp_path_factory.mktemp("ft_data")
    items = list(digits_source())
    for name, classes, channels in [("d04", "01234", 1), ("d59", "56789", 1), ("d59rgb", "56789", 3)]:
        prepare_dataset([it for it in items if it[1] in classes], root / name, SplitConfig(), channels,
                        limit_per_class=12, name=name)
    return {name: root / name for name in ("d04", "d59", "d59rgb")}


def lenet_source(hydra_cfg, prepared: Path, path: Path, **override) -> Path:
    """A cnnlab lenet5 checkpoint for ``prepared``'s classes (untrained weights suffice here)."""
    meta, _ = read_prepared(prepared)
    torch.manual_seed(0)
    hp = dict(arch="lenet5", classes=meta["classes"], in_chans=meta["channels"], input_size=[32, 32],
              normalization={"mean": meta["mean"], "std": meta["std"]}, model_kwargs=model_kwargs(hydra_cfg()))
    return save_classifier(Classifier(**{**hp, **override}), path)


@pytest.fixture
def src(hydra_cfg, data, tmp_path) -> Path:
    return lenet_source(hydra_cfg, data["d04"], tmp_path / "src.ckpt")


def ft_cfg(hydra_cfg, strategy: str, target: Path, source: Path | None, tmp: Path, *extra: str):
    cache = [f"finetune.cache_dir={tmp / 'cache'}"] if strategy == "head" else []
    src = [f"finetune.source={source}"] if source else []
    return hydra_cfg(f"{FT}={strategy}", f"paths.prepared={target}", *src, f"finetune.out={tmp / 'out'}",
                     "finetune.shots=4", "trainer.max_epochs=2", *cache, *QUIET, *extra)


def test_checkpoint_source_gets_a_new_head_and_keeps_its_trunk(hydra_cfg, data, src, tmp_path):
    module, dm, source, blocks, (start, every) = prepare(ft_cfg(hydra_cfg, "partial", data["d59"], src, tmp_path,
                                                                 "finetune.n_blocks=2"))
    old, _ = load_checkpoint(src)
    assert dm.classes == ["5", "6", "7", "8", "9"] and module.hparams.classes == dm.classes
    assert module.model.head.out_features == 5 and old.head.out_features == 5
    assert torch.count_nonzero(module.model.head.weight) == 0 != torch.count_nonzero(old.head.weight)  # new, zero
    new_sd, old_sd = module.model.state_dict(), old.state_dict()
    assert all(torch.equal(new_sd[k], v) for k, v in old_sd.items() if not k.startswith("head."))
    # The source's normalisation and input size, not the target's statistics.
    assert module.hparams.normalization == source.normalization != read_prepared(data["d59"])[0]["mean"]
    assert (start, every) == (2, None) and [b.frozen for b in blocks] == [True, True, False, False]
    assert len(dm.split("train")) == 5 * 4


def test_few_shot_keeps_k_seeded_images_per_class(data):
    _, rows = read_prepared(data["d59"])
    a, b, c = few_shot(rows, 3, seed=0), few_shot(rows, 3, seed=0), few_shot(rows, 3, seed=1)
    train = [r for r in a if r["split"] == "train"]
    assert sorted(r["label"] for r in train) == sorted("56789" * 3)
    assert a == b and a != c
    assert [r for r in a if r["split"] != "train"] == [r for r in rows if r["split"] != "train"]
    with pytest.raises(DataError, match=r"class '5' has \d+ training images, fewer than finetune.shots=50"):
        few_shot(rows, 50, seed=0)


def test_cached_head_equals_training_through_the_frozen_backbone(hydra_cfg, data, src, tmp_path):
    """Same seed, same batches: head trained on cached features == head trained through frozen layers."""
    cfg = ft_cfg(hydra_cfg, "head", data["d59"], src, tmp_path, "trainer.max_epochs=3",
                 "early_stopping.monitor=train/loss", "early_stopping.mode=min")
    torch.manual_seed(0)
    module, dm, source, _, _ = prepare(cfg)
    twin = copy.deepcopy(module)
    init = module.model.head.weight.detach().clone()
    key = {"source": source.sha256, "arch": "lenet5", "data": dataset_sha256(data["d59"])}
    fit_cached_head(cfg, module, dm, key, tmp_path / "a")
    twin_blocks = trunk_blocks(twin.model)
    fit_through(cfg, twin, dm, FreezeSchedule(twin_blocks, start=0), tmp_path / "b")
    assert not torch.allclose(module.model.head.weight, init, atol=1e-3), "the head trained"
    torch.testing.assert_close(module.model.head.weight, twin.model.head.weight, atol=2e-5, rtol=1e-4)
    torch.testing.assert_close(module.model.head.bias, twin.model.head.bias, atol=2e-5, rtol=1e-4)
    old, _ = load_checkpoint(src)
    trunk = {k: v for k, v in twin.model.state_dict().items() if not k.startswith("head.")}
    assert all(torch.equal(v, old.state_dict()[k]) for k, v in trunk.items()), "the trunk stayed frozen"
    # The features were written once per split and are read back on the next run, not recomputed.
    cached = sorted(p.name for p in (tmp_path / "cache").iterdir())
    assert len(cached) == 2 and cached[0].startswith("train-") and cached[1].startswith("val-")
    stamp = [(tmp_path / "cache" / n).stat().st_mtime_ns for n in cached]
    torch.manual_seed(0)
    module2, dm2, _, _, _ = prepare(cfg)
    import cnnlab.tasks.finetune.cached as ftmod  # where cached_features looks extract_features up

    def no_recompute(*a, **k):
        raise AssertionError("features recomputed despite the cache")

    orig, ftmod.extract_features = ftmod.extract_features, no_recompute
    try:
        fit_cached_head(cfg, module2, dm2, key, tmp_path / "c")
    finally:
        ftmod.extract_features = orig
    assert [(tmp_path / "cache" / n).stat().st_mtime_ns for n in cached] == stamp
    torch.testing.assert_close(module2.model.head.weight, module.model.head.weight)


@dataclass
class Payload:
    """Any non-tensor Python object: unpickling it could run arbitrary code."""

    note: str = "not a tensor"


def test_source_that_pickles_objects_is_refused(hydra_cfg, data, tmp_path):
    bad = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "extra": Payload()}, bad)
    with pytest.raises(ValueError, match=r"refused: the file pickles Python objects.*weights_only=True"):
        prepare(ft_cfg(hydra_cfg, "full", data["d59"], bad, tmp_path))


def test_checkpoint_of_another_architecture(hydra_cfg, data, src, tmp_path):
    with pytest.raises(ValueError, match="the checkpoint is a lenet5, but model=resnet18; fine-tune with model=lenet5"):
        prepare(ft_cfg(hydra_cfg, "full", data["d59"], src, tmp_path, "model=resnet18"))
    with pytest.raises(ValueError, match="built with .*act.*relu.*configured one with .*tanh"):
        prepare(ft_cfg(hydra_cfg, "full", data["d59"], src, tmp_path, "model.act=tanh"))


def test_checkpoint_with_other_input_channels(hydra_cfg, data, src, tmp_path):
    with pytest.raises(ValueError, match=r"takes 1-channel images but the target data has 3 .*data.channels=1"):
        prepare(ft_cfg(hydra_cfg, "head", data["d59rgb"], src, tmp_path))


def test_checkpoint_whose_weights_do_not_fit_its_classes(hydra_cfg, data, src, tmp_path):
    ckpt = torch.load(src, weights_only=True)
    ckpt["hyper_parameters"]["classes"] = ["0", "1", "2"]  # but the head has 5 outputs
    torch.save(ckpt, tmp_path / "lying.ckpt")
    with pytest.raises(ValueError, match=r"weights do not fit its own metadata \(lenet5, 3 classes"):
        prepare(ft_cfg(hydra_cfg, "head", data["d59"], tmp_path / "lying.ckpt", tmp_path))


@pytest.fixture(scope="module")
def tv_resnet18(tmp_path_factory) -> tuple[Path, torch.nn.Module]:
    torch.manual_seed(0)
    tv = torchvision.models.resnet18(weights=None).eval()
    for m in tv.modules():  # non-trivial BN statistics, so that a wrong mapping would show
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    path = tmp_path_factory.mktemp("tv") / "resnet18.pth"
    torch.save(tv.state_dict(), path)
    return path, tv


def test_torchvision_weight_file_source(hydra_cfg, tv_resnet18, tmp_path):
    path, tv = tv_resnet18
    cfg = hydra_cfg(f"{FT}=full", "model=resnet18", f"finetune.source={path}")
    source = load_source(cfg, channels=3, num_classes=5)
    x = torch.randn(2, 3, 64, 64)
    tv.fc = torch.nn.Identity()
    with torch.no_grad():
        ours = source.model.forward_head(source.model.forward_features(x), pre_logits=True)
        torch.testing.assert_close(ours, tv(x))
    assert source.normalization["mean"] == [0.485, 0.456, 0.406] and source.input_size == [224, 224]


def test_torchvision_file_for_another_architecture(hydra_cfg, tv_resnet18):
    path, _ = tv_resnet18
    cfg = hydra_cfg(f"{FT}=full", "model=mobilenet_v2", f"finetune.source={path}")
    with pytest.raises(ValueError, match=r"no classifier weights after renaming torchvision mobilenet_v2 keys"):
        load_source(cfg, channels=3, num_classes=5)
    cfg = hydra_cfg(f"{FT}=full", "model=resnet34", f"finetune.source={path}")
    with pytest.raises(ValueError, match=r"does not fit the configured model: \d+ missing keys \['layer1.2"):
        load_source(cfg, channels=3, num_classes=5)
    cfg = hydra_cfg(f"{FT}=full", "model=resnet18", f"finetune.source={path}")
    with pytest.raises(ValueError, match=r"first convolution takes 3 input channel\(s\) but the target data has 1"):
        load_source(cfg, channels=1, num_classes=5)
    cfg = hydra_cfg(f"{FT}=full", "model=resnet18", f"finetune.source={path.parent / 'missing.pth'}")
    with pytest.raises(FileNotFoundError, match="finetune.source not found"):
        load_source(cfg, channels=3, num_classes=5)


def test_stage_writes_outputs_and_the_comparison_table(hydra_cfg, data, src, tmp_path, monkeypatch):
    from cnnlab.stages.finetune import main

    models = tmp_path / "models"
    base = [f"paths.prepared={data['d59']}", f"finetune.source={src}", "finetune.shots=4", "trainer.max_epochs=3",
            *QUIET]
    out = models / "lenet5-ft-gradual" / "shots4" / "seed0"
    # In-process (the Hydra app exactly as ``python -m cnnlab.stages.finetune`` runs it), into a private MLflow store.
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.setenv("CNNLAB_CONF", str(REPO / "conf"))
    argv = ["finetune", f"{FT}=gradual", "finetune.unfreeze_every=1", f"finetune.out={out}", *base]
    monkeypatch.setattr("sys.argv", argv)
    main()
    assert sorted(p.name for p in out.iterdir()) == ["best.ckpt", "details.json", "history.csv", "last.ckpt",
                                                    "learning_curves.png", "metrics.json", "mlflow_run.json"]
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")], "no temporary folder left"
    m = json.loads((out / "details.json").read_text())
    headline = json.loads((out / "metrics.json").read_text())   # `dvc metrics show`: the numbers only
    assert headline["test_acc"] == m["test_acc"] and not {"strategy", "source", "source_sha256"} & set(headline)
    assert m["strategy"] == "gradual" and m["n_train"] == 20 and m["trainable_blocks_at_start"] == 0
    assert 0.0 <= m["test_acc"] <= 1.0 and m["blocks"] == 4
    model, hp = load_checkpoint(out / "best.ckpt")
    assert hp["classes"] == ["5", "6", "7", "8", "9"] and model(torch.zeros(1, 1, 32, 32)).shape == (1, 5)
    assert Classifier.load_from_checkpoint(out / "best.ckpt", weights_only=True).hparams.arch == "lenet5"
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    (r,) = client.search_runs([client.get_experiment_by_name("cnnlab").experiment_id])
    assert r.data.tags["stage"] == "finetune" and r.data.tags["strategy"] == "gradual" and r.data.tags["shots"] == "4"
    assert r.data.metrics["test_acc"] == pytest.approx(m["test_acc"])
    trainable = [h.value for h in client.get_metric_history(r.info.run_id, "ft/trainable_blocks")]
    assert trainable == [0.0, 1.0, 2.0]  # gradual unfreezing, one block per epoch, as MLflow saw it

    with pytest.raises(ValueError, match=r"finetune.n_blocks must be 1\.\.4"):
        finetune(ft_cfg(hydra_cfg, "partial", data["d59"], src, tmp_path / "bad", "finetune.n_blocks=9"))
    assert not (tmp_path / "bad" / "out").exists() and not list((tmp_path / "bad").glob(".out*"))

    scratch = {**m, "strategy": "scratch", "test_acc": 0.25}
    (models / "lenet5-ft-scratch" / "shots4" / "seed0").mkdir(parents=True)
    (models / "lenet5-ft-scratch" / "shots4" / "seed0" / "details.json").write_text(json.dumps(scratch))
    rows, table = comparison_table(collect_runs(models))
    assert [(r["strategy"], r["shots"]) for r in rows] == [("scratch", 4), ("gradual", 4)]
    assert table.splitlines()[0] == "| strategy | 4 / class |"
    assert table.splitlines()[2] == "| scratch | 25.0% |"
    assert table.splitlines()[3] == f"| gradual | {m['test_acc']:.1%} |"
    written, _ = write_comparison(models, tmp_path / "report", model="lenet5")
    assert (tmp_path / "report" / "table.md").read_text() == table
    assert json.loads((tmp_path / "report" / "comparison.json").read_text()) == written == rows
    with pytest.raises(FileNotFoundError, match="no fine-tuning details.json"):
        write_comparison(models, tmp_path / "none", model="resnet18")
