"""Augmentation: the course's seven distortions and the policies composed from them.

Five come from torchvision transforms v2 and are composed in ``conf/augment/*.yaml``: mirroring
(``RandomHorizontalFlip``), rotation (``RandomRotation``), shearing (``RandomAffine(shear=...)``),
local warping (``ElasticTransform``) and brightness/contrast jitter (``ColorJitter``). This package
adds what v2 lacks: size-preserving random cropping, per-channel colour shifting and AlexNet's
PCA colour augmentation. The augment stage's materialised variants and preview grid live in
``materialise`` and ``preview`` (not imported here: DataLoader workers need only the transforms).
"""

from .pca import PCA_FILE, PCAColour, bind_pca_colour, fit_pca_colour, load_pca_colour, save_pca_colour
from .transforms import ChannelShift, RandomResizedCropKeepSize

__all__ = [
    "PCA_FILE", "ChannelShift", "PCAColour", "RandomResizedCropKeepSize", "bind_pca_colour", "fit_pca_colour",
    "load_pca_colour", "save_pca_colour",
]
