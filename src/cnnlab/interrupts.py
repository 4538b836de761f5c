"""The exception a signal (SIGTERM, SIGINT) turns into, shared by the training skeleton, the stages
and the tracker (which marks the MLflow run KILLED). It sits at the bottom of the layering
(docs/ARCHITECTURE.md), so the tracker need not import the training code to recognise it."""

from __future__ import annotations


class Interrupted(RuntimeError):
    """Training stopped on a signal; the partial folder is kept for ``resume=true``.

    Attributes:
        signum: the signal (``signal.SIGTERM`` or ``signal.SIGINT``).
        exit_code: the conventional status for it, 128 + signum.
    """

    def __init__(self, signum: int, message: str):
        super().__init__(message)
        self.signum = signum
        self.exit_code = 128 + int(signum)
