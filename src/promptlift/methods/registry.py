"""The METHODS registry: one entry per post-training method, from which the CLI's `train` group, the lift registry,
the app's lift list and the bundle's weight folders are all read."""

from __future__ import annotations

import dataclasses
import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from ..pipeline.lift_registry import register_lift
from ..profiles import embedded_model
from ..registry import check_registration
from .config import MethodTrainConfig

if TYPE_CHECKING:
    from ..pipeline import Lift

__all__ = ["METHODS", "MethodSpec", "register_method"]


@dataclass(frozen=True)
class MethodSpec:
    """A method: `promptlift train NAME` (its config dataclass and trainer), and the lift NAME that applies what it
    trained, whose default weights are the embedded model's `bundle_subfolder`."""

    name: str
    config: type[MethodTrainConfig]
    trainer: str  # "module:function", imported when a run starts (trainers pull in heavy dependencies)
    help: str
    lift: Callable[..., Lift] | str  # or "module:function"
    bundle_subfolder: str

    @property
    def bundle_weights(self) -> Path | None:
        """The embedded model's trained weights of this method, if its plug-in ships them."""
        embedded = embedded_model()
        path = embedded.lifts / self.bundle_subfolder if embedded is not None else None
        return path if path is not None and path.is_dir() else None

    def train(self, cfg: MethodTrainConfig) -> Path:
        """Run the trainer; returns the run folder (best/ and final/ inside). `cfg.num_threads` holds from here on, so
        from the first model loaded (the caches built before training included)."""
        if cfg.num_threads:
            import torch

            torch.set_num_threads(cfg.num_threads)
        module, _, function = self.trainer.partition(":")
        return getattr(importlib.import_module(module), function)(cfg)


METHODS: dict[str, MethodSpec] = {}


def register_method(name: str, *, config: type[MethodTrainConfig], trainer: str, help: str, lift_help: str,
                    lift: Callable[..., Lift] | str | None = None, bundle_subfolder: str | None = None,
                    path_is_spec: bool = False):
    """Register method `name` and its lift `(name, path, **options) -> Lift`: `lift` is the factory or its
    "module:function" name (imported when the lift is first built, so registering loads no torch); without `lift`,
    `register_method` decorates the factory. Both validated now (a config that is not a MethodTrainConfig dataclass,
    or a trainer that is not "module:function", is refused)."""

    def register(factory: Callable[..., Lift] | str):
        check_registration("method", METHODS, name, factory if callable(factory) else (lambda: None), help)
        if not (dataclasses.is_dataclass(config) and issubclass(config, MethodTrainConfig)):
            raise TypeError(f"method {name!r}: `config` must be a MethodTrainConfig dataclass, got {config!r}.")
        if not all(trainer.partition(":")[::2]):
            raise ValueError(f"method {name!r}: `trainer` must be 'module:function', got {trainer!r}.")
        spec = MethodSpec(name, config, trainer, help, factory, bundle_subfolder or name)
        register_lift(name, help=lift_help, default_path=lambda: spec.bundle_weights, path_is_spec=path_is_spec)(factory)
        METHODS[name] = spec
        return factory

    return register(lift) if lift is not None else register


def bundle_lift(name: str) -> Path:
    """The folder of the embedded bundle's trained lift `name` (one of METHODS): weights trained on the embedded model,
    for it alone.

    Args:
        name: a method's name: "quality-tuning", "refiner", "sur-adapter" or "textcraftor".

    Examples:
        >>> import promptlift
        >>> promptlift.bundle_lift("textcraftor").name
        'textcraftor'
    """
    if name not in METHODS:
        raise ValueError(f"no method {name!r}; the bundle ships lifts of: {', '.join(sorted(METHODS))}.")
    folder = METHODS[name].bundle_weights
    if folder is None:
        raise ValueError(f"this install's bundle ships no {name!r} weights; train them: promptlift train {name}.")
    return folder


def train(config: MethodTrainConfig) -> Path:
    r"""Train the method whose config `config` is (`promptlift.TextCraftorConfig`, `SURAdapterConfig`, `RefinerConfig`,
    `QualityTuningConfig`), as `promptlift train NAME` does; returns the run folder (best/ and final/ inside, each a
    lift folder `promptlift.load_lift` takes). Under `accelerate launch` or `torchrun` it trains on every process.

    Args:
        config: the method's config; its fields are the `promptlift train NAME` options.

    Examples:
        >>> import promptlift
        >>> _ = (tmp / "prompts.txt").write_text("two red boats at sunset\na lone white tree in the snow\n")
        >>> cfg = promptlift.TextCraftorConfig(output_dir=tmp / "tc", prompts=str(tmp / "prompts.txt"), max_train_steps=1,
        ...                                    train_batch_size=1, num_inference_steps=2, grad_steps=1, switch_step=0,
        ...                                    eval_steps=1, num_eval_prompts=1, eval_inference_steps=2)
        >>> run = promptlift.train(cfg)                   # on the embedded model; `pretrained_model_name_or_path=` yours
        step 1: {'win_rate_vs_base': ...}
        >>> promptlift.Lift.from_pretrained(run / "final").name
        'textcraftor'
    """
    for spec in METHODS.values():
        if type(config) is spec.config:
            return spec.train(config)
    raise TypeError(f"`config` is a {type(config).__name__}; pass one of: "
                    f"{', '.join(spec.config.__name__ for spec in METHODS.values())}.")
