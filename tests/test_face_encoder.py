"""The face encoder: L2-normalised embeddings, a Lightning run per objective, safe checkpoints."""

import lightning as L
import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader, TensorDataset

from cnnlab.face.training.module import Embedder, FaceEncoderModule, checkpoint_hash, load_encoder
from cnnlab.face.gallery.encodings import encode_with_checkpoint
from cnnlab.face.training.losses import PKSampler

NORM = {"mean": [0.5], "std": [0.25]}


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def _module(**kw):
    return FaceEncoderModule(arch="lenet5", in_chans=1, input_size=[32, 32], normalization=NORM,
                             model_kwargs={"act": "relu"}, embedding_dim=16, identities=["a", "b", "c", "d"], **kw)


def _loaders():
    g = torch.Generator().manual_seed(0)
    people = torch.randn(4, 1, 32, 32, generator=g)
    y = torch.arange(4).repeat_interleave(6)
    x = people[y] + 0.1 * torch.randn(24, 1, 32, 32, generator=g)
    ds = TensorDataset(x, y)
    train = DataLoader(ds, batch_sampler=PKSampler(y.numpy(), p=2, k=3, seed=0))
    return train, DataLoader(ds, batch_size=24)


def test_embedder_gives_unit_vectors_from_any_backbone():
    for arch, shape in (("lenet5", (3, 1, 32, 32)), ("nin", (3, 1, 32, 32))):
        emb = Embedder(arch, 24, in_chans=1).eval()(torch.randn(*shape))
        assert emb.shape == (3, 24)
        torch.testing.assert_close(emb.norm(dim=1), torch.ones(3))


@pytest.mark.parametrize("objective, kw", [("triplet", {"miner": "hard"}), ("triplet", {"miner": "semi_hard"}),
                                           ("binary", {"pair_head": "abs"}), ("binary", {"pair_head": "chi2"})])
def test_fast_dev_run_trains_and_validates(objective, kw):
    torch.manual_seed(0)
    module = _module(objective=objective, margin=0.5, **kw)
    before = module.embedder.proj.weight.detach().clone()
    trainer = L.Trainer(fast_dev_run=True, accelerator="cpu", logger=False, enable_progress_bar=False,
                        enable_model_summary=False)
    trainer.fit(module, *_loaders())
    metrics = trainer.callback_metrics
    assert {"train/loss", "val/rank1", "val/eer", "val/auc", "val/loss"} <= set(metrics)
    assert 0.0 <= metrics["val/rank1"] <= 1.0 and torch.isfinite(metrics["train/loss"])
    assert not torch.equal(before, module.embedder.proj.weight)            # an optimiser step ran
    assert (module.pair_head is not None) == (objective == "binary")


def test_checkpoint_loads_weights_only_and_rebuilds_the_encoder(tmp_path):
    torch.manual_seed(0)
    module = _module(objective="triplet")
    trainer = L.Trainer(max_steps=1, limit_val_batches=1, accelerator="cpu", logger=False,
                        enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False)
    trainer.fit(module, *_loaders())
    ckpt = tmp_path / "encoder.ckpt"
    trainer.save_checkpoint(ckpt)

    raw = torch.load(ckpt, weights_only=True)
    hp = raw["hyper_parameters"]
    assert (hp["arch"], hp["embedding_dim"], hp["in_chans"], hp["input_size"]) == ("lenet5", 16, 1, [32, 32])
    assert hp["model_kwargs"] == {"act": "relu"} and hp["normalization"] == NORM

    embedder, hp2 = load_encoder(ckpt)
    x = torch.randn(5, 1, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(embedder(x), module.embedder.eval()(x))
    assert hp2["identities"] == ["a", "b", "c", "d"]

    digest = checkpoint_hash(ckpt)
    assert len(digest) == 64 and digest == checkpoint_hash(ckpt)
    gallery = tmp_path / "gallery" / "a"
    gallery.mkdir(parents=True)
    Image.fromarray(np.zeros((50, 40), np.uint8), "L").save(gallery / "1.pgm")
    Image.fromarray(np.full((20, 30, 3), 200, np.uint8), "RGB").save(gallery / "2.png")
    enc = encode_with_checkpoint(ckpt, tmp_path / "gallery")
    assert enc.encoder_hash == digest and enc.encoder_name == "lenet5" and enc.embeddings.shape == (2, 16)


def test_load_encoder_refuses_other_files(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_encoder(tmp_path / "missing.ckpt")
    torch.save({"state_dict": {}, "hyper_parameters": {"arch": "lenet5", "classes": ["a"]}}, tmp_path / "clf.ckpt")
    with pytest.raises(ValueError, match="not a cnnlab face-encoder checkpoint"):
        load_encoder(tmp_path / "clf.ckpt")


def test_face_datamodule_serves_pk_batches_of_training_people_only(tmp_path):
    from cnnlab.data.prepare import SplitConfig, prepare_dataset
    from cnnlab.face.training.data import FaceDataModule

    rng = np.random.default_rng(0)
    items = [(f"{i}", f"p{p}", Image.fromarray(rng.integers(0, 256, (20, 18), dtype=np.uint8), "L"))
             for p in range(7) for i in range(4)]
    prepare_dataset(items, tmp_path / "faces", SplitConfig(by="identities", val_ids=2, test_ids=1), channels=1)
    dm = FaceDataModule(tmp_path / "faces", (32, 32), p=2, k=3, batch_size=8)
    train_people = dm.train_identities
    assert len(train_people) == 4
    for x, y in dm.train_dataloader():
        assert x.shape == (6, 1, 32, 32)
        assert sorted(np.unique(y.numpy(), return_counts=True)[1].tolist()) == [3, 3]
        assert {dm.classes[i] for i in y.tolist()} <= set(train_people)
    module = FaceEncoderModule(arch="lenet5", in_chans=dm.channels, input_size=list(dm.image_size),
                               normalization=dm.normalization, embedding_dim=8, identities=train_people)
    trainer = L.Trainer(fast_dev_run=True, accelerator="cpu", logger=False, enable_progress_bar=False,
                        enable_model_summary=False)
    trainer.fit(module, datamodule=dm)
    assert "val/eer" in trainer.callback_metrics
