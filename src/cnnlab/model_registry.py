"""A cnnlab classifier as an MLflow model: logged, registered under an alias, loaded back.

``select`` registers the chosen checkpoint as a version of ``select.registered_model`` with the
alias ``champion``. The MLflow model is a pyfunc whose artifact is the cnnlab checkpoint (loaded
with ``weights_only=True``); ``predict`` takes images and returns class probabilities::

    import mlflow
    mlflow.set_tracking_uri("http://127.0.0.1:5000")        # make mlflow-ui
    model = mlflow.pyfunc.load_model("models:/cnnlab-classifier@champion")
    probs = model.predict(images)   # float [N, C, H, W] in [0, 1] at the checkpoint's input size

With the local sqlite store and no server, :func:`load_registered` resolves the version's
``mlflow-artifacts:`` location under ``mlartifacts/`` itself.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import numpy as np


ALIAS = "champion"


class ClassifierModel(mlflow.pyfunc.PythonModel):
    """pyfunc wrapper of a cnnlab classifier checkpoint (artifact ``checkpoint``)."""

    def load_context(self, context):
        from .tasks.classifier import load_checkpoint

        self.model, self.hp = load_checkpoint(context.artifacts["checkpoint"])

    def predict(self, context, model_input: np.ndarray, params=None):
        """Class probabilities ``[N, K]`` (numpy) of images ``[N, C, H, W]`` in [0, 1] (un-normalised)."""
        import torch

        x = torch.as_tensor(np.asarray(model_input, dtype=np.float32))
        norm = self.hp["normalization"]
        mean = torch.tensor(norm["mean"], dtype=torch.float32).view(1, -1, 1, 1)
        std = torch.tensor(norm["std"], dtype=torch.float32).view(1, -1, 1, 1)
        with torch.inference_mode():
            return torch.softmax(self.model((x - mean) / std), dim=1).numpy()


def register_checkpoint(tracker: Any, checkpoint: str | Path, name: str, alias: str = ALIAS) -> str:
    """Log ``checkpoint`` as the MLflow model ``model`` of ``tracker``'s run, register it as a new
    version of ``name`` and point ``alias`` at it. Returns the version number."""
    import os

    import torch

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(tmp) / "model"
        mlflow.pyfunc.save_model(path=str(local), python_model=str(Path(__file__).with_name("_pyfunc_model.py")),
                                 artifacts={"checkpoint": str(checkpoint)},
                                 pip_requirements=[f"torch=={torch.__version__.split('+')[0]}"])
        tracker.log_artifact(local, "model")
    client = tracker._client

    def _register() -> str:
        from mlflow.exceptions import MlflowException

        try:
            client.create_registered_model(name, description="cnnlab classifiers chosen by the select stage")
        except MlflowException as err:
            if "already exists" not in str(err).lower() and "RESOURCE_ALREADY_EXISTS" not in str(err):
                raise
        mv = client.create_model_version(name, source=f"{tracker.artifact_uri}/model", run_id=tracker.run_id)
        client.set_registered_model_alias(name, alias, mv.version)
        return str(mv.version)

    return tracker._call(_register)


def load_registered(name: str, alias: str = ALIAS, uri: str | None = None) -> Any:
    """The pyfunc of ``models:/<name>@<alias>`` from ``uri`` (default: cnnlab's tracking URI)."""
    from mlflow.tracking import MlflowClient

    from .track import PROXY, artifact_root, tracking_uri

    uri = tracking_uri(uri)
    root = artifact_root(uri)
    client = MlflowClient(tracking_uri=uri)
    version = client.get_model_version_by_alias(name, alias)
    if root is not None and version.source.startswith(PROXY):
        return mlflow.pyfunc.load_model(str(root / version.source.removeprefix(PROXY).lstrip("/")))
    mlflow.set_tracking_uri(uri)
    return mlflow.pyfunc.load_model(f"models:/{name}@{alias}")
