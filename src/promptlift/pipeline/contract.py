"""The lift contract: `Lift`, the base class of every post-training change to a pipeline, and `PromptEmbeds`, what
its embedding seam edits.

A lift reaches the pipeline through one of three seams: it swaps components (`apply`: a tuned text encoder, UNet
weights, a LoRA), rewrites prompts (`rewrite_prompts`: a refiner), or edits the prompt embeddings
(`edit_prompt_embeds`: an adapter). A Lift is saved and loaded in the lift format (`save_pretrained`,
`from_pretrained`), which the modules below this one read and write: lift_config.py (the folder's lift_config.json),
base_model.py (the model it was trained on), cards.py (its model card), lift_registry.py (the factory of each type).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Callable

import torch
from diffusers import DiffusionPipeline

from ..files import atomic_dir
from ..registry import load_plugins
from .base_model import read_base_model
from .cards import write_model_card
from .lift_config import LIFT_CONFIG_FILE, LORA_FILE, folder_options, lift_type_of, resolve_lift_source, write_lift_config
from .lift_registry import LIFTS, build_lift

__all__ = ["Lift", "PromptEmbeds"]


@dataclass
class PromptEmbeds:
    """The embedding keyword arguments of a Stable Diffusion (XL) pipeline call."""

    prompt_embeds: torch.Tensor  # (B, L, D)
    negative_prompt_embeds: torch.Tensor | None = None  # (B, L, D), present with CFG
    pooled_prompt_embeds: torch.Tensor | None = None  # (B, D2), SDXL only
    negative_pooled_prompt_embeds: torch.Tensor | None = None  # (B, D2), SDXL with CFG
    negative_prompt: str | list[str] | None = field(default=None, metadata={"kwarg": False})  # the text, for lifts that re-encode
    # What the lifts' edits are measured against (see `encode_prompts`): the pipeline's encoders' output before any
    # edit, and the base model's encoders' output (they differ when a lift swapped an encoder).
    encoded: PromptEmbeds | None = field(default=None, repr=False, metadata={"kwarg": False})
    base_fn: Callable[[], PromptEmbeds] | None = field(default=None, repr=False, metadata={"kwarg": False})
    # the user's prompts when a lift rewrote them (a refiner), and how the base model encodes those
    user_prompts: list[str] | None = field(default=None, repr=False, metadata={"kwarg": False})
    user_base_fn: Callable[[], PromptEmbeds] | None = field(default=None, repr=False, metadata={"kwarg": False})

    TENSORS = ("prompt_embeds", "negative_prompt_embeds", "pooled_prompt_embeds", "negative_pooled_prompt_embeds")

    def as_kwargs(self) -> dict[str, torch.Tensor]:
        """Keyword arguments for `pipe(...)`, leaving out what is absent."""
        return {f.name: getattr(self, f.name) for f in fields(self)
                if f.metadata.get("kwarg", True) and getattr(self, f.name) is not None}

    @property
    def base(self) -> PromptEmbeds:
        """The base model's embeddings of the same prompts (encoded on first use; `self.encoded` when no lift swapped
        an encoder). An embedding lift trained on the base model reads these, so it reads what it was trained on."""
        if self.base_fn is not None:
            self._base, self.base_fn = self.base_fn(), None
        return getattr(self, "_base", None) or self.encoded or self

    @property
    def user_base(self) -> PromptEmbeds:
        """The base model's embeddings of the user's prompts before any rewrite (`self.base` when none was rewritten):
        what an adapter that reads the user's words adapts, its change then added to the rewrite's."""
        if self.user_base_fn is not None:
            self._user_base, self.user_base_fn = self.user_base_fn(), None
        return getattr(self, "_user_base", None) or self.base

    def edits(self, reference: PromptEmbeds | None = None) -> dict[str, torch.Tensor | None]:
        """{field: how it differs from `reference` (default `encoded`: what the lifts so far changed)}: None where it is
        the reference's own tensor."""
        reference = reference or self.encoded or self
        return {name: None if getattr(self, name) is getattr(reference, name) else getattr(self, name) - getattr(reference, name)
                for name in self.TENSORS if getattr(self, name) is not None}


class Lift:
    """A post-training change to a pipeline. Subclasses override what they change; the defaults change nothing.

    A lift is loaded into a pipeline with `promptlift.load_lift` (a folder, a Hub repo id, a LoRA file or a Lift
    object), saved with `save_pretrained` (its weights, `lift_config.json` and its model card) and read back with
    `Lift.from_pretrained`:

        >>> import promptlift
        >>> lift = promptlift.Lift.from_pretrained(promptlift.bundle_lift("textcraftor"))  # or a Hub repo id
        >>> lift.name, lift.options["alpha"]
        ('textcraftor', 1.0)

    Attributes:
        name: the lift's type, the registered name it is built by (`promptlift lifts` lists them).
        path: the weights it was loaded from, if any.
        adapter_name: the name it has in a pipeline (`load_lift(..., adapter_name=...)`; default: `name`).
        options: the options it was built with, its defaults included (what `save_pretrained` records).
        weight: how strongly it applies (`promptlift.set_lifts`); 1 is as trained.
    """

    # Set by `promptlift.load_lift(reversible=True)` before `apply`: keep what `remove` needs to undo in-place changes.
    keep_originals: bool = False
    weight: float = 1.0

    def __init__(self, name: str, path: Path | None = None):
        self.name = name
        self.path = path
        self.adapter_name = name
        self.options: dict = {}

    def apply(self, pipe: DiffusionPipeline) -> None:
        """Swap or patch pipeline components in place (tuned text encoder, UNet weights, LoRA)."""

    def remove(self, pipe: DiffusionPipeline) -> None:
        """Undo what `apply` changed inside components (`promptlift.unload_lifts`); swapped components are put back
        for it."""

    def set_active(self, pipe: DiffusionPipeline, active: bool) -> None:
        """Switch what `apply` changed inside components off or back on (`promptlift.disable_lifts`, `set_lifts`);
        swapped components are switched for it, LoRA adapters through `lora_adapters`."""

    def set_weight(self, weight: float) -> None:
        """How strongly the lift applies (`promptlift.set_lifts`): 1 as trained. A lift that cannot be reweighted
        takes 1 only (0 switches it off, which `set_lifts` does)."""
        if weight != 1:
            raise ValueError(f"lift {self.adapter_name!r} ({self.name}) applies at one strength: its weight is 1 (on) "
                             f"or 0 (off), got {weight}.")

    def lora_adapters(self) -> dict[str, float]:
        """{diffusers adapter name: its weight at lift weight 1} of the LoRA layers `apply` loaded (unfused); the
        pipeline's `set_adapters` is called with every active lift's, each times the lift's weight."""
        return {}

    @property
    def rewrites_prompts(self) -> bool:
        """Whether the lift rewrites the prompt's text (it then cannot take given `prompt_embeds`)."""
        return type(self).rewrite_prompts is not Lift.rewrite_prompts

    def folders(self) -> list[Path]:
        """The folders holding this lift's trained weights (checked against the pipeline's base model)."""
        return [self.path] if self.path is not None and self.path.is_dir() else []

    def rewrite_prompts(self, prompts: list[str]) -> list[str]:
        """Rewrite the user's prompts before encoding (a prompt refiner)."""
        return prompts

    def edit_prompt_embeds(self, pipe: DiffusionPipeline, embeds: PromptEmbeds, prompts: list[str]) -> PromptEmbeds:
        """Change the prompt embeddings before they reach the UNet (an adapter): read `embeds.base` and add the change
        to `embeds` (see `encode_prompts`)."""
        return embeds

    def original_encoders(self) -> dict[str, torch.nn.Module]:
        """{component name: the module this lift's `apply` replaced}, for encoders only: how the base model encodes."""
        return {}

    # Pipeline tensors `on_step_end` reads or replaces (diffusers' `callback_on_step_end_tensor_inputs`).
    callback_tensor_inputs: tuple[str, ...] = ()

    def on_step_end(self, pipe: DiffusionPipeline, step: int, timestep, tensors: dict) -> dict:
        """Called after denoising step `step`; returns the tensors to replace from the next step on (a schedule
        of conditionings, as TextCraftor's hybrid sampling). Only lifts with `callback_tensor_inputs` are asked."""
        return {}

    def describe(self) -> dict:
        """What to record in an image's sidecar to reproduce it."""
        return {"name": self.name, "path": str(self.path) if self.path else None}

    # -- the lift format ------------------------------------------------------------------------------------------

    @classmethod
    def from_pretrained(cls, source: str | Path, *, revision: str | None = None, subfolder: str | None = None,
                        cache_dir: str | Path | None = None, local_files_only: bool | None = None,
                        token: str | bool | None = None, **options) -> Lift:
        """The lift in `source`: a folder (with `lift_config.json`, or a layout written before it), a Hugging Face Hub
        repo id (downloaded into, or offline read from, huggingface_hub's cache: `revision`, `cache_dir`,
        `local_files_only` and `token` as the library takes them), or a LoRA `.safetensors` file. `subfolder`: the
        lift's folder inside `source`. `options` are the lift's keyword options, over the defaults the folder
        records; one the lift does not have is refused by name."""
        local = resolve_lift_source(source, revision=revision, subfolder=subfolder, cache_dir=cache_dir,
                                    local_files_only=local_files_only, token=token)
        if local.is_file() and local.suffix != ".safetensors":
            raise ValueError(f"lift file {str(local)!r} is no .safetensors LoRA; pass a LoRA file or a lift folder.")
        lift_type = "lora" if local.is_file() else lift_type_of(local)
        load_plugins()
        if lift_type not in LIFTS:
            raise ValueError(f"{str(source)!r} is a {lift_type!r} lift, which no installed package registers; install "
                             f"the package that adds it (registered lifts: {', '.join(sorted(LIFTS))}).")
        recorded = folder_options(lift_type, local, str(source))
        weights = local if LIFTS[lift_type].weights else None
        lift = build_lift(lift_type, weights, {**recorded, **options}, where=f"lift {str(source)!r}")
        if not isinstance(lift, cls):
            raise ValueError(f"{str(source)!r} holds a {lift_type!r} lift ({type(lift).__name__}), not a {cls.__name__}; "
                             "load it with `promptlift.Lift.from_pretrained`.")
        return lift

    def save_pretrained(self, save_directory: str | Path) -> Path:
        """Write the lift as a folder others load with `Lift.from_pretrained` or `promptlift.load_lift`: its weights
        (safetensors, as trained), `lift_config.json` (type, format version, base model, options) and README.md (its
        model card). The folder appears whole or not at all; one that holds other files than a lift's is refused."""
        import shutil


        target = Path(save_directory)
        if target.is_dir() and any(target.iterdir()) and not (target / LIFT_CONFIG_FILE).is_file():
            raise ValueError(f"{str(target)!r} holds files and no lift; pass an empty or new folder.")
        source = self.path
        if source is not None and source.is_dir() and source.resolve() == target.resolve():
            raise ValueError(f"lift {self.adapter_name!r} was loaded from {str(target)!r}; save it to another folder.")
        if source is None and LIFTS.get(self.name, None) is not None and LIFTS[self.name].weights:
            raise ValueError(f"lift {self.adapter_name!r} ({self.name}) holds its weights in memory only; save them "
                             "with its trainer, then load that folder.")
        rewritten = {LIFT_CONFIG_FILE, "README.md", "base_model.json"}
        with atomic_dir(target) as tmp:
            if source is not None and source.is_dir():
                for item in source.iterdir():
                    if item.name in rewritten or item.name.startswith("."):
                        continue
                    (shutil.copytree if item.is_dir() else shutil.copy2)(item, tmp / item.name)
            elif source is not None:
                shutil.copy2(source, tmp / LORA_FILE)
            base = read_base_model(source) if source is not None and source.is_dir() else None
            write_lift_config(tmp, self.name, base, self.options)
            card = source / "README.md" if source is not None and source.is_dir() else None
            if card is not None and card.is_file():
                shutil.copy2(card, tmp / "README.md")
            else:
                write_model_card(tmp, self.name, base or {})
        return target

    def push_to_hub(self, repo_id: str, *, token: str | bool | None = None, private: bool | None = None,
                    revision: str | None = None, commit_message: str | None = None) -> str:
        """Upload the lift as `save_pretrained` writes it (weights, lift_config.json, model card) to the Hub repo
        `repo_id`, created if needed; returns the commit's URL. Others load it with `promptlift.load_lift(pipe,
        repo_id)`."""
        import tempfile

        from huggingface_hub import HfApi

        with tempfile.TemporaryDirectory() as tmp:
            staged = self.save_pretrained(Path(tmp) / "lift")
            api = HfApi(token=token)
            api.create_repo(repo_id, private=private, exist_ok=True)
            info = api.upload_folder(repo_id=repo_id, folder_path=staged, revision=revision,
                                     commit_message=commit_message or f"promptlift {self.name} lift")
        return str(getattr(info, "commit_url", info))
