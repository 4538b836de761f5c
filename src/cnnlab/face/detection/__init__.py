"""Faces in images: detectors (:mod:`.detectors`), image reading (:mod:`.images`), dlib's model
files (:mod:`.model_files`), drawing boxes (:mod:`.drawing`), landmarks and alignment
(:mod:`.align`), the preprocessing recipe (:mod:`.preprocess`) and aligning a data set (:mod:`.aligned_data`)."""
