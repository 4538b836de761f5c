"""Semantic segmentation: mask-folder import, joint augmentation, the U-Net trainer, evaluation, inference."""
