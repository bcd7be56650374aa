"""The four post-training methods, one folder each in one shape (config.py: the dataclass; trainer.py: its MethodTrainer;
lift.py: the lift that applies what it trained; model.py where the method has a model of its own), registered in
METHODS by the folder's __init__; common.py and heldout.py hold what their trainers share (the
lifted stack of all four is data in pipeline/stack.py).

A new method is a folder here whose __init__ registers it with `register_method` (config, trainer, lift), imported
below; the CLI's `train` group, `promptlift lifts`, the app and the bundle paths then all know it.
"""

from . import quality_tuning, refiner, sur_adapter, textcraftor  # noqa: F401 (each registers its method and lift)
from .registry import METHODS, MethodSpec, bundle_lift, register_method, train

__all__ = ["METHODS", "MethodSpec", "bundle_lift", "register_method", "train"]
