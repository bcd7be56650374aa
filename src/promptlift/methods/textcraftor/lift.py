"""The `textcraftor` lift: tuned text encoders with the paper's inference controls (arXiv 2403.18978, section 4).

- Weight-space mixes of several tuned encoders, `--lift textcraftor=a:0.7,b:0.3` (`base` names the pipeline's
  own encoder, so `base:0.5,a:0.5` is half-way in weight space); LoRA outputs mix through diffusers' adapters.
- Embedding interpolation `alpha`: embeds = original + alpha x (tuned - original); 0 is the base model, 1 the
  tuned one, values between blend the styles.
- The hybrid schedule `switch_step`: the original encoder conditions the first N denoising steps, the tuned one
  the rest (the paper: 10 of 25).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import torch
from diffusers import StableDiffusionXLPipeline

from ...pipeline import Lift, PromptEmbeds, load_component_strict, plus_edits, swapped, unload_empty_lora_layers
from ...pipeline.lift_config import LORA_FILE

__all__ = ["ENCODERS", "TextCraftorLift", "mix_encoders", "parse_mix", "swapped"]

ENCODERS = ("text_encoder", "text_encoder_2")
INFO_FILE = "textcraftor.json"


def parse_mix(spec: str) -> list[tuple[str, float]]:
    """"a:0.7,b:0.3" -> [("a", 0.7), ("b", 0.3)]; one PATH without a weight means weight 1. Weights sum to 1."""
    parts = []
    for item in str(spec).split(","):
        path, sep, weight = item.strip().rpartition(":")
        if not sep or not _is_number(weight):
            path, weight = item.strip(), "1"
        parts.append((path, float(weight)))
    if not all(p for p, _ in parts):
        raise ValueError(f"textcraftor mix {spec!r} has an empty entry; write PATH[:WEIGHT],PATH[:WEIGHT].")
    total = sum(w for _, w in parts)
    if abs(total - 1) > 1e-6:
        raise ValueError(f"textcraftor mix {spec!r}: the weights sum to {total:g}, not 1; for a blend beyond the two "
                         "encoders use `--lift_option textcraftor.alpha=...` instead.")
    return parts


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def mix_encoders(originals: dict[str, torch.nn.Module], parts: list[tuple[str, float]]) -> dict[str, torch.nn.Module]:
    """Weight-space mixes sum_i w_i * theta_i of full tuned encoders (`base` = the original) per encoder name.

    Each tuned folder must hold the encoder's complete weights with the original's keys (loaded strictly). An encoder
    that no part tuned is left out (the pipeline keeps its own: no copy), and one folder at weight 1 is loaded as it
    is (no mix): at SDXL size each copy of text_encoder_2 is 2.8 GB in fp32.
    """
    mixed = {}
    for name, original in originals.items():
        folders = {path: Path(path) / name for path, _ in parts
                   if path != "base" and (Path(path) / name / "config.json").is_file()}
        if not folders:
            continue

        def load(path, cls=type(original)):
            return load_component_strict(cls, folders[path], f"textcraftor {path!r}")

        if len(parts) == 1 and parts[0][1] == 1.0:
            mixed[name] = load(parts[0][0]).eval()
            continue
        # a run that left this encoder as it was counts as the original
        states = [(load(path).state_dict() if path in folders else original.state_dict(), weight) for path, weight in parts]
        module = copy.deepcopy(original)
        with torch.no_grad():
            for key, value in module.state_dict().items():
                value.copy_(sum(w * sd[key].float() for sd, w in states))
        mixed[name] = module.eval()
    return mixed


class TextCraftorLift(Lift):
    """Apply TextCraftor-tuned encoders (full folders or LoRA, mixed by weight) with alpha and the hybrid schedule.

        >>> import promptlift
        >>> pipe = promptlift.load_pipeline()
        >>> tc = promptlift.TextCraftorLift("textcraftor", promptlift.bundle_lift("textcraftor"), alpha=0.5, switch_step=3)
        >>> promptlift.load_lift(pipe, tc)      # the base encoder for 3 steps, then half-way to the tuned one
        >>> image = pipe("two red boats at sunset", num_inference_steps=4).images[0]
    """

    def __init__(self, name: str, path: Path | str | None, alpha: float = 1.0, switch_step: int | None = None, *,
                 originals: dict[str, torch.nn.Module] | None = None):
        """PATH: a `promptlift train textcraftor` output (or best/, final/), or a mix "a:0.7,b:0.3".
        `originals`: in memory, the untuned encoders (a trainer evaluating the encoders it is training)."""
        super().__init__(name, Path(str(path)) if path is not None and originals is None else None)
        self.alpha = float(alpha)
        if not 0 <= self.alpha <= 1:  # also refuses NaN
            raise ValueError(f"textcraftor `alpha` must be from 0 (the base encoder) to 1 (the tuned one), got {alpha!r}.")
        self.parts = parse_mix(str(path)) if originals is None else []
        if originals is None and path is None:
            raise ValueError(f"lift {name!r} needs weights: pass `--lift {name}=PATH` (a `promptlift train "
                             "textcraftor` output) or a mix `--lift textcraftor=a:0.7,b:0.3`.")
        for folder, _ in self.parts:
            if folder != "base" and not _tuned_parts(Path(folder)):
                raise ValueError(f"lift {name!r}: {folder!r} holds no tuned encoder (no text_encoder/ folder and no "
                                 f"{LORA_FILE}); pass the output of `promptlift train textcraftor`.")
        if switch_step is None:
            info = next((Path(f) / INFO_FILE for f, _ in self.parts if (Path(f) / INFO_FILE).is_file()), None)
            switch_step = json.loads(info.read_text()).get("switch_step", 0) if info else 0
        self.switch_step = int(switch_step)
        if self.switch_step < 0:
            raise ValueError(f"`switch_step` must be >= 0, got {self.switch_step}.")
        self.originals = originals or {}
        self._later: dict[str, torch.Tensor] = {}
        self._adapters: dict[str, float] = {}  # the LoRA adapters `apply` loaded into the pipeline's encoders

    @property
    def callback_tensor_inputs(self) -> tuple[str, ...]:
        return tuple(self._later) if self.switch_step > 0 else ()

    def apply(self, pipe) -> None:
        names = [n for n in ENCODERS if getattr(pipe, n, None) is not None]
        lora = [(f, w) for f, w in self.parts if f != "base" and (Path(f) / LORA_FILE).is_file()]
        full = [(f, w) for f, w in self.parts if (f, w) not in lora]
        if lora and full != [("base", w) for f, w in full]:
            raise ValueError(f"lift {self.name!r}: cannot mix LoRA outputs with full encoder folders by weight; "
                             "mix runs of one kind.")
        if lora:  # LoRA layers go into the pipeline's own encoders: the originals are copies
            self.originals = {n: copy.deepcopy(getattr(pipe, n)).requires_grad_(False).eval() for n in names}
            self._adapters = {}
            for i, (folder, weight) in enumerate(lora):
                adapter = f"{self.adapter_name}_{i}" if len(lora) > 1 else self.adapter_name
                pipe.load_lora_weights(folder, adapter_name=adapter)
                self._adapters[adapter] = weight
            return
        # the pipeline's own encoders become the originals of those a tuned one replaces; the others stay shared
        mixed = mix_encoders({n: getattr(pipe, n) for n in names}, self.parts)
        self.originals = {n: getattr(pipe, n).requires_grad_(False).eval() for n in mixed}
        for name, module in mixed.items():
            device, dtype = getattr(pipe, name).device, getattr(pipe, name).dtype
            pipe.register_modules(**{name: module.to(device=device, dtype=dtype)})

    def remove(self, pipe) -> None:
        """LoRA outputs leave the pipeline's encoders; swapped full encoders are put back by `unlift`."""
        if self._adapters:
            pipe.delete_adapters(list(self._adapters))
            unload_empty_lora_layers(pipe)
            self._adapters = {}

    def lora_adapters(self) -> dict[str, float]:
        """A LoRA output's adapters at their mix weights; the lift's weight moves the embedding instead (`alpha`)."""
        return dict(self._adapters)

    def set_weight(self, weight: float) -> None:
        """The lift's weight multiplies `alpha`: 0.5 is half-way from the base encoder's embedding to the tuned one's."""
        if not 0 <= weight * self.alpha <= 1:
            raise ValueError(f"lift {self.adapter_name!r}: weight {weight} times alpha {self.alpha:g} must be from 0 "
                             "(the base encoder) to 1 (the tuned one).")
        self.weight = float(weight)

    def folders(self) -> list[Path]:
        return [Path(f) for f, _ in self.parts if f != "base"]

    def original_encoders(self) -> dict[str, torch.nn.Module]:
        return self.originals

    def edit_prompt_embeds(self, pipe, embeds: PromptEmbeds, prompts: list[str]) -> PromptEmbeds:
        """The tuned embeddings (`embeds.encoded`, from the swapped-in encoders) moved `alpha` of the way from the base
        model's, plus what earlier lifts changed; with the hybrid schedule the base model's (plus those changes) until
        `switch_step`."""
        edits = embeds.edits()
        alpha = self.alpha * self.weight
        if alpha == 1 and self.switch_step == 0:
            return embeds
        original, encoded = embeds.base, embeds.encoded
        now = {f: plus_edits(getattr(original, f), edits.get(f)) for f in PromptEmbeds.TENSORS}
        tuned = {f: plus_edits(_lerp(getattr(original, f), getattr(encoded, f), alpha), edits.get(f))
                 for f in PromptEmbeds.TENSORS}
        if self.switch_step == 0:
            return _replace(embeds, tuned)
        # the pipeline stacks [negative; positive] when guiding; the callback hands the tuned ones over at the switch
        self._later = {"prompt_embeds": _stacked(tuned["negative_prompt_embeds"], tuned["prompt_embeds"])}
        if isinstance(pipe, StableDiffusionXLPipeline):
            self._later["add_text_embeds"] = _stacked(tuned["negative_pooled_prompt_embeds"], tuned["pooled_prompt_embeds"])
        return _replace(embeds, now)

    def on_step_end(self, pipe, step: int, timestep, tensors: dict) -> dict:
        if step + 1 != self.switch_step:
            return {}
        # the pipeline repeats each prompt's rows `num_images_per_prompt` times, prompt by prompt
        return {k: v.repeat_interleave(tensors[k].shape[0] // v.shape[0], 0).to(tensors[k]) for k, v in self._later.items()}

    def describe(self) -> dict:
        return {**super().describe(), "mix": self.parts, "alpha": self.alpha, "switch_step": self.switch_step}


def _tuned_parts(folder: Path) -> bool:
    return (folder / LORA_FILE).is_file() or any((folder / n / "config.json").is_file() for n in ENCODERS)


def _replace(embeds: PromptEmbeds, tensors: dict[str, torch.Tensor | None]) -> PromptEmbeds:
    for name, tensor in tensors.items():
        setattr(embeds, name, tensor)
    return embeds


def _lerp(a: torch.Tensor | None, b: torch.Tensor | None, alpha: float) -> torch.Tensor | None:
    if a is None or b is None:
        return b
    return a + alpha * (b - a)


def _stacked(negative: torch.Tensor | None, positive: torch.Tensor) -> torch.Tensor:
    return positive if negative is None else torch.cat([negative, positive])


def textcraftor_lift(name: str, path: Path | None, alpha: float = 1.0, switch_step: int | None = None) -> TextCraftorLift:
    """The `textcraftor` lift (`--lift textcraftor[=PATH or a:0.7,b:0.3]`)."""
    return TextCraftorLift(name, path, alpha=alpha, switch_step=switch_step)
