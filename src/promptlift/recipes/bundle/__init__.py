"""The recipe that trains and measures the embedded default bundle on the world (`promptlift world train-bundle`)."""

from .recipe import PARTS, BundleConfig, train_bundle

__all__ = ["PARTS", "BundleConfig", "train_bundle"]
