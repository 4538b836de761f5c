"""Stage ``calibrate``: validation people's encodings → τ for ``face.calibrate.target_far``.

The record (τ, achieved FAR and TAR on the validation pairs, the encoder's hash) is written
beside the validation encodings and beside each gallery in ``face.calibrate.apply_to``, where
:class:`~cnnlab.face.gallery.verify.Gallery` and ``cnnlab face`` read it.
"""

from __future__ import annotations

from omegaconf import DictConfig

from ._app import done, log, stage, tracker


@stage(config_name="faces")
def main(cfg: DictConfig) -> None:
    from ..face.models.embedder import checkpoint_hash, load_encoder
    from ..face.gallery.encodings import load_encodings
    from ..face.gallery.verify import calibrate, save_threshold

    c, ckpt = cfg.face.calibrate, cfg.face.paths.encoder
    val = load_encodings(c.encodings)
    galleries = {path: load_encodings(path) for path in c.apply_to}
    digest = checkpoint_hash(ckpt)
    for path, enc in [(c.encodings, val), *galleries.items()]:
        if enc.encoder_hash != digest:
            raise ValueError(f"{path} was encoded by another encoder than {ckpt}: run encode_faces again")
    seen = sorted(set(val.labels) & set(load_encoder(ckpt)[1].get("identities") or ()))
    if seen:
        log.warning("%d of the %d validation people were seen in training: their impostor pairs lie farther "
                    "apart than new people's, so τ will accept more than %g of new impostors",
                    len(seen), len(set(val.labels)), c.target_far)
    with tracker("calibrate", cfg, dataset=cfg.face.dataset, model=cfg.face.encoder.name) as t:
        record = calibrate(val, c.target_far) | {"calibrated_on": str(c.encodings), "seen_in_training": bool(seen)}
        for path in [c.encodings, *galleries]:
            save_threshold(path, record)
        log.info("τ = %.4f for target FAR %g (FAR %.4f, TAR %.3f on %d validation pairs); stored beside %s",
                 record["tau"], c.target_far, record["far"], record["tar"],
                 record["n_genuine"] + record["n_impostor"], ", ".join(map(str, [c.encodings, *galleries])))
        t.log_results({k: record[k] for k in ("tau", "far", "tar", "target_far", "n_genuine", "n_impostor")})
        done(t, ", ".join(map(str, [c.encodings, *galleries])) + " (τ)")


if __name__ == "__main__":
    main()
