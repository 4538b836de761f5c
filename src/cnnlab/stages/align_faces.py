"""Stage ``align_faces``: ``data/prepared/<face dataset>`` → ``data/aligned/<face dataset>``.

Detection → 5-point landmarks → similarity-aligned crops (``face.align``), with the same split and
manifest, so every later face stage reads aligned faces (``face.paths.prepared``). Writes
``alignment.json`` (detection rate, images without a face) beside the crops, and the timings
(ms per face) to ``face.paths.alignment_metrics``: they differ run to run, so they stay out of the
DVC-cached folder.
"""

from __future__ import annotations

from omegaconf import DictConfig

from ._app import done, log, stage, tracker


@stage(config_name="faces")
def main(cfg: DictConfig) -> None:
    from ..face.detection.aligned_data import align_prepared
    from ..io import write_json

    f, a = cfg.face, cfg.face.align
    with tracker("align_faces", cfg, dataset=f.dataset) as t:
        report = align_prepared(f.paths.source, f.paths.prepared, detector=a.detector, upsample=a.upsample,
                                size=a.size, padding=a.padding, no_face=a.no_face)
        log.info("aligned %d images of %s into %s: faces detected in %d (%.1f %%), %s ms per face",
                 report["images"], f.paths.source, f.paths.prepared, report["detected"],
                 100 * report["detection_rate"], report["ms_per_face"])
        write_json(f.paths.alignment_metrics, {"detection_rate": report["detection_rate"],
                                               "ms_per_face": report["ms_per_face"]})
        t.log_results({"images": report["images"], "detection_rate": report["detection_rate"],
                       **{f"ms_per_face_{k}": v for k, v in report["ms_per_face"].items()}})
        done(t, f.paths.prepared)


if __name__ == "__main__":
    main()
