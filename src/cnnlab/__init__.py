"""cnnlab: a reproducible lab for convolutional networks."""

__version__ = "0.1.0"
