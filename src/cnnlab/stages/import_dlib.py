"""Stage ``import_dlib``: dlib's face ResNet (from the installed ``face_recognition_models``) →
``models/faces/dlib_resnet/best.ckpt``, a face-encoder checkpoint (``encoder=dlib_resnet``).

The weights are read from ``dlib_face_recognition_resnet_model_v1.dat`` by cnnlab's own parser
(:mod:`cnnlab.face.models.dlib_resnet`), nothing is downloaded. The checkpoint is what ``encode_faces``,
``evaluate_faces``, ``cnnlab face`` and fine-tuning (``encoder=dlib_resnet_ft``) read.
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from ._app import done, log, stage, tracker


@stage(config_name="faces")
def main(cfg: DictConfig) -> None:
    from ..face.models.dlib_resnet import model_path
    from ..face.models.embedder import DLIB_ARCH, checkpoint_hash, pretrained_dlib_checkpoint

    f = cfg.face
    if f.encoder.arch != DLIB_ARCH or f.encoder.kind != "pretrained":
        raise ValueError(f"import_dlib writes dlib's pretrained encoder: run it with encoder=dlib_resnet "
                         f"(face.encoder.arch={f.encoder.arch}, kind={f.encoder.kind})")
    dat = model_path()
    with tracker("import_dlib", cfg, dataset=None, model=f.encoder.name) as t:
        out = pretrained_dlib_checkpoint(f.paths.encoder, dat)
        log.info("imported %s into %s", dat, out)
        t.set_tags({"source": str(dat), "encoder_hash": checkpoint_hash(out)})
        t.log_results({"size_mb": Path(out).stat().st_size / 2 ** 20})
        done(t, out)


if __name__ == "__main__":
    main()
