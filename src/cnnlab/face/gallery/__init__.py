"""The face system on precomputed encodings: the ``.npz`` store (:mod:`.encodings`),
nearest-neighbour search (:mod:`.search`), enroll / verify / identify / calibrate (:mod:`.verify`)."""
