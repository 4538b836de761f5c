"""Model zoo. Importing this package registers every family (one module per family)."""

from . import (  # noqa: F401  (importing registers the builders)
    alexnet,
    conv_nd,
    course_examples,
    darknet,
    efficientnet,
    inception,
    lenet,
    mobilenet,
    nin,
    resnet,
    unet,
    vgg,
)
from .registry import create_model, default_input_size, get_entry, list_models, register_model

__all__ = ["create_model", "default_input_size", "get_entry", "list_models", "register_model"]
