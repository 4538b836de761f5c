"""Stage ``encode_faces``: a gallery folder (one sub-folder per person) → ``data/encodings/<name>.npz``.

The face-encoding precomputation: ``gallery.root=/some/dir`` encodes any folder (greyscale PGM
and RGB images alike) with the configured encoder (``face.paths.encoder``); verification and
identification then run on these vectors, and the encoder only on new images.

Photos are detected and aligned first with ``face.align`` (``gallery.align=false`` for folders of
face crops); a split folder of ``data/aligned/`` is already aligned and is encoded as it is. The
encodings record the recipe, so ``cnnlab face`` prepares probes the same way.
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from ._app import done, log, stage, tracker


@stage(config_name="faces")
def main(cfg: DictConfig) -> None:
    from ..face.gallery.encodings import encode_with_checkpoint, gallery_name, save_encodings
    from ..face.detection.preprocess import recipe

    f, g = cfg.face, cfg.gallery
    name = g.name or gallery_name(g.root)
    out = Path(f.paths.encodings) / f"{name}.npz"
    with tracker("encode_faces", cfg, dataset=name, model=f.encoder.name, train_on=f.train_on) as t:
        align = recipe(f.align) if g.get("align", True) else None
        enc = encode_with_checkpoint(f.paths.encoder, g.root, batch_size=g.batch_size, name=f.encoder.name,
                                     align=align, no_face=f.align.no_face, progress=True)
        save_encodings(out, enc)
        log.info("encoded %d images of %d people from %s into %s (%s)", len(enc), len(set(enc.labels)), g.root, out,
                 f"aligned: {enc.preprocess}" if enc.preprocess else "as given")
        if enc.no_face:
            log.warning("no face found in %d image(s), framed whole: %s", len(enc.no_face), enc.no_face[:10])
        t.log_results({"n_images": len(enc), "n_people": len(set(enc.labels)), "dim": enc.dim,
                       "no_face": len(enc.no_face)})
        t.set_tags({"encoder_hash": enc.encoder_hash, "gallery_root": g.root})
        t.link_train_runs(Path(f.paths.encoder).parent)
        done(t, out)


if __name__ == "__main__":
    main()
