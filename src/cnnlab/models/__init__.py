"""Model zoo. Importing this package registers every family (one module per family)."""

from .registry import create_model, default_input_size, get_entry, list_models, register_model
from . import lenet  # noqa: F401  (registers)
from . import alexnet, vgg, resnet, nin, conv_nd  # noqa: F401
from . import course_examples  # noqa: F401
from . import inception, mobilenet, efficientnet  # noqa: F401

__all__ = ["create_model", "default_input_size", "get_entry", "list_models", "register_model"]
