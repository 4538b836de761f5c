"""Scoring faces: metrics (:mod:`.metrics`), baselines (:mod:`.baselines`), identity folds
(:mod:`.folds`), the held-out evaluation (:mod:`.heldout`) and its report (:mod:`.report`), the
comparison of every method (:mod:`.compare`) and the ensemble × multi-crop benchmark (:mod:`.benchmark`)."""
