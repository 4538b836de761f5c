"""Face encoders: f(x) over any zoo backbone (:mod:`.embedder`), dlib's face ResNet
(:mod:`.dlib_resnet`) and dlib's ``.dat`` file format it is read from (:mod:`.dlib_dat`)."""
