"""Face verification (1:1) and recognition (1:K) from a learned similarity function.

- :mod:`.losses`: triplet loss and online mining, the siamese binary head, the P×K sampler.
- :mod:`.encoder`: the L2-normalised embedder over any zoo backbone and its LightningModule.
- :mod:`.data`: P×K training batches over a prepared identity split.
- :mod:`.metrics`: one-shot rank-1, ROC / EER / TAR at FAR, open-set DIR, threshold calibration.
- :mod:`.encodings`: precomputed gallery encodings (``.npz``).
- :mod:`.gallery`: enroll, verify, identify, calibrate.
- :mod:`.search`: faiss (exact and approximate) or numpy nearest-neighbour search.
- :mod:`.baselines`: raw pixels, Eigenfaces, Fisherfaces, LBP histograms.
"""
