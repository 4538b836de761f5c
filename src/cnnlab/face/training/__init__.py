"""Training the face encoder: objectives and miners (:mod:`.losses`), P×K batches (:mod:`.data`),
the LightningModule (:mod:`.module`) and the ``train_encoder`` run (:mod:`.train`)."""
