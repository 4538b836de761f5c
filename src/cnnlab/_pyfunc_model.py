"""MLflow "model from code" entry of a cnnlab classifier (see :mod:`cnnlab.model_registry`)."""

import mlflow

from cnnlab.model_registry import ClassifierModel

mlflow.models.set_model(ClassifierModel())
