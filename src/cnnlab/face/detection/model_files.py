"""The one locator of the model files shipped by ``face_recognition_models`` (dlib's landmark predictors and face ResNet)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

LANDMARKS_5 = "shape_predictor_5_face_landmarks.dat"


def face_model_file(name: str) -> Path:
    """Path of a model file shipped by the ``face_recognition_models`` package.

    The package is located without importing it (its ``__init__`` needs ``pkg_resources``, absent
    from recent setuptools).

    Args:
        name: A file of its ``models/`` folder, e.g. ``"shape_predictor_5_face_landmarks.dat"``.

    Raises:
        FileNotFoundError: the package is not installed, or has no such file (the message says
            how to install it).
    """
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or spec.origin is None:
        raise FileNotFoundError(f"{name}: the face_recognition_models package is not installed "
                                f"(pip install 'cnnlab[faces]' or pip install face_recognition_models)")
    path = Path(spec.origin).parent / "models" / name
    if not path.is_file():
        raise FileNotFoundError(f"{name} not found in the face_recognition_models package ({path.parent})")
    return path
