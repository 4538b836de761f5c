"""Face verification (1:1) and recognition (1:K) from a learned similarity function.

- :mod:`.detection`: finding faces (dlib HOG, OpenCV Haar), 5-point landmarks and alignment to a
  dlib-compatible chip, the preprocessing recipe, aligning a whole data set.
- :mod:`.models`: the encoder f(x) over any zoo backbone, and dlib's face ResNet (the network
  apart from its ``.dat`` file format).
- :mod:`.training`: triplet / siamese objectives and miners, P×K batches, the LightningModule and
  the ``train_encoder`` run.
- :mod:`.gallery`: precomputed encodings, nearest-neighbour search, enroll / verify / identify.
- :mod:`.evaluation`: face metrics, hand-engineered baselines, identity folds, the held-out
  evaluation, its report, the comparison table and the ensemble × multi-crop benchmark.
- :mod:`.cli`: ``cnnlab face enroll | verify | identify | detect``.
"""
