"""promptlift's ComfyUI nodes: the lifts inside a ComfyUI graph, on ComfyUI's own CLIP and CONDITIONING.

- Load lift: a lift folder or Hub id (`promptlift.Lift.from_pretrained`), as PROMPTLIFT_LIFT.
- Refine prompt: the refiner's one-shot rewrite, or its rounds of candidates with one kept each round, by index or
  by a reward on quick previews; STRING out.
- Apply SUR-adapter: the adapter on the CONDITIONING of ComfyUI's CLIP Text Encode (SDXL: and the pooled output).
- Apply TextCraftor: the tuned text encoder's weights, all of them, patched into a CLIP (strength in weight space).
- Lifted stack: refine, adapt the base encoding of the rewrite, add the TextCraftor encoder's change (times
  `textcraftor_alpha`), as `promptlift generate --lifted` composes them; CONDITIONING and the prompt it encoded out.
Quality-tuning needs no node: its kohya LoRA (`promptlift export lora`) loads in ComfyUI's own LoraLoader.

ComfyUI is imported by nothing here: a node receives ComfyUI's objects (CLIP, CONDITIONING) and calls their methods,
so the module loads, and is tested, without ComfyUI; tests/test_comfyui.py runs it inside ComfyUI's engine too.
"""

from __future__ import annotations

import functools
from pathlib import Path

import torch

from ..pipeline import Lift, PromptEmbeds
from ..pipeline.base_model import read_base_model

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "LIFT_TYPE"]

LIFT_TYPE = "PROMPTLIFT_LIFT"
CATEGORY = "promptlift"
# ComfyUI's CLIP state-dict prefix of each diffusers text encoder (SD 1.x/2.x: clip_l or clip_h; SDXL: clip_l, clip_g)
ENCODER_PREFIXES = {"text_encoder": ("clip_l.transformer.", "clip_h.transformer."),
                    "text_encoder_2": ("clip_g.transformer.",)}


def _require(lift, kind: str, node: str) -> Lift:
    if not isinstance(lift, Lift) or lift.name != kind:
        got = f"a {lift.name!r} lift" if isinstance(lift, Lift) else type(lift).__name__
        raise ValueError(f"{node}: the `lift` input is {got}, not a {kind!r} lift; connect a Load lift node whose "
                         f"source is a `promptlift train {kind}` output.")
    return lift


def _check_width(lift: Lift, width: int, node: str) -> None:
    """Refuse a lift trained on a model whose prompt embedding is not `width` wide, naming both and the fix."""
    record = read_base_model(lift.path) if lift.path is not None else None
    if not record or not record.get("text_embedding_dims"):
        return
    theirs = sum(record["text_embedding_dims"])
    if theirs != width:
        kinds = {768: "SD 1.x", 1024: "SD 2.x", 2048: "SDXL"}
        raise ValueError(f"{node}: lift {str(lift.path)!r} was trained on {record.get('pretrained_model_name_or_path')} "
                         f"({record.get('pipeline_class')}, a prompt embedding {theirs} wide), but this CLIP's is {width} "
                         f"wide ({kinds.get(width, 'another model')}); load a lift trained on this checkpoint's model.")


class _ComfyTokenizer:
    """The Hugging Face tokenizer inside a ComfyUI CLIP (CLIP-L's, the one diffusers' `pipe.tokenizer` is), standing in
    for a pipeline's where a lift reads one: prompt lengths for the SUR-adapter's padding mask, the refiner's token
    budget."""

    def __init__(self, clip):
        tokenizer = clip.tokenizer
        inner = getattr(tokenizer, "clip_l", None) or getattr(tokenizer, str(getattr(tokenizer, "clip", "")), None)
        if inner is None or not hasattr(inner, "tokenizer"):
            raise ValueError(f"this CLIP's tokenizer ({type(tokenizer).__name__}) is no Stable Diffusion CLIP's; the "
                             "promptlift nodes work on SD 1.x, 2.x and SDXL checkpoints.")
        self.tokenizer = inner.tokenizer


def _embeds(cond: torch.Tensor, extra: dict, pooled: bool) -> PromptEmbeds:
    return PromptEmbeds(prompt_embeds=cond, pooled_prompt_embeds=extra.get("pooled_output") if pooled else None)


def _conditioning(embeds: PromptEmbeds, extra: dict) -> list:
    out = dict(extra)
    if embeds.pooled_prompt_embeds is not None:
        out["pooled_output"] = embeds.pooled_prompt_embeds
    return [embeds.prompt_embeds, out]


class LoadLift:
    """A promptlift lift from a folder (`promptlift train ...` output, best/ or final/) or a Hugging Face Hub id."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"source": ("STRING", {"default": "", "tooltip": "A lift folder or a Hub repo id."})}}

    RETURN_TYPES = (LIFT_TYPE,)
    RETURN_NAMES = ("lift",)
    FUNCTION = "load"
    CATEGORY = CATEGORY

    def load(self, source: str):
        source = source.strip()
        if not source:
            raise ValueError("Load lift: `source` is empty; give a lift folder (a `promptlift train` output) or a Hub "
                             "repo id.")
        if Path(source).expanduser().exists():
            source = str(Path(source).expanduser())
        return (Lift.from_pretrained(source),)


class RefinePrompt:
    """The refiner's rewrite of a plain prompt: one-shot, or `rounds` rounds of `candidates` continuations, one kept each
    round: the one at `pick` (as `promptlift refine --pick first` keeps the first), or, with `pick_by` reward, the one
    whose quick preview (the MODEL, `preview_steps` steps at `preview_size` px, the same seed for every candidate)
    `reward` scores highest against the plain prompt, as `promptlift refine --pick reward` picks."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"text": ("STRING", {"multiline": True, "default": ""}),
                             "lift": (LIFT_TYPE,),
                             "strategy": (["one-shot", "iterative"],),
                             "max_new_tokens": ("INT", {"default": 20, "min": 1, "max": 77}),
                             "rounds": ("INT", {"default": 3, "min": 1, "max": 10}),
                             "candidates": ("INT", {"default": 3, "min": 1, "max": 8}),
                             "new_tokens": ("INT", {"default": 6, "min": 1, "max": 32}),
                             "pick": ("INT", {"default": 0, "min": 0, "max": 7,
                                              "tooltip": "Which candidate each round keeps (0: the first)."}),
                             "seed": ("INT", {"default": 0, "min": 0, "max": 2**31 - 1})},
                "optional": {"clip": ("CLIP", {"tooltip": "Keeps the rewrite within this CLIP's 77 tokens."}),
                             "pick_by": (["index", "reward"],),
                             "reward": ("STRING", {"default": "laion-aesthetic",
                                                   "tooltip": "A promptlift reward (`promptlift rewards` lists them)."}),
                             "model": ("MODEL",), "vae": ("VAE",),
                             "preview_steps": ("INT", {"default": 10, "min": 1, "max": 50}),
                             "preview_size": ("INT", {"default": 256, "min": 64, "max": 1024, "step": 64})}}

    RETURN_TYPES = ("STRING", "STRING")
    RETURN_NAMES = ("prompt", "candidates")
    FUNCTION = "refine"
    CATEGORY = CATEGORY

    def refine(self, text, lift, strategy, max_new_tokens, rounds, candidates, new_tokens, pick, seed, clip=None,
               pick_by="index", reward="laion-aesthetic", model=None, vae=None, preview_steps=10, preview_size=256):
        from ..methods.refiner.interactive import refine_rounds

        node = "Refine prompt"
        refiner = refiner_of(lift, clip, node)
        if not text.strip():
            raise ValueError(f"{node}: `text` is empty; give the plain prompt to refine.")
        if strategy == "one-shot":
            result = refiner.one_shot([text], max_new_tokens, seed=seed)[0] or text
            return result, result
        if pick_by == "index" and pick >= candidates:
            raise ValueError(f"{node}: `pick` {pick} is not one of the {candidates} candidates (0 to {candidates - 1}).")
        if pick_by == "reward":
            if clip is None or model is None or vae is None:
                raise ValueError(f"{node}: `pick_by` reward scores previews of the candidates: connect the checkpoint's "
                                 "MODEL, CLIP and VAE.")
            score = _reward(reward)

            def choose(round_, found):
                images = _previews(model, clip, vae, found, seed, preview_steps, preview_size)
                return int(score(images, [text] * len(found)).argmax())
        else:
            def choose(round_, found):
                return min(pick, len(found) - 1)
        shown = []
        result = refine_rounds(refiner, text, rounds, candidates, new_tokens, seed,
                               lambda round_, found: shown.append(found) or choose(round_, found))
        return result, "\n".join(shown[-1] if shown else [result])


@functools.lru_cache(maxsize=4)
def _reward(name: str):
    """A reward, loaded once per ComfyUI process (not per queued prompt)."""
    from ..rewards import load_reward

    return load_reward(name)


def _previews(model, clip, vae, prompts: list[str], seed: int, steps: int, size: int) -> torch.Tensor:
    """(N, 3, size, size) images in [0, 1]: each prompt sampled by ComfyUI's KSampler from the same seed."""
    import nodes  # ComfyUI's, present where the node runs

    negative = _encode(clip, "")
    images = []
    for prompt in prompts:
        latent = {"samples": torch.zeros(1, 4, size // 8, size // 8)}
        samples = nodes.common_ksampler(model, seed, steps, 7.5, "euler", "normal", _encode(clip, prompt), negative,
                                        latent)[0]["samples"]
        images.append(vae.decode(samples)[..., :3].movedim(-1, 1).float().clamp(0, 1))
    return torch.cat(images)


def refiner_of(lift, clip, node: str):
    """The refiner a `refiner` lift holds, its token budget `clip`'s (none without a CLIP); loaded once per CLIP."""
    import json

    from ..methods.refiner.lift import Refiner
    from ..methods.refiner.lm import LM_CONFIG_FILE
    from ..methods.refiner.model import CONFIG_FILE

    lift = _require(lift, "refiner", node)
    budget = _ComfyTokenizer(clip) if clip is not None else None
    key = None if budget is None else id(budget.tokenizer)
    cache = lift.__dict__.setdefault("_comfyui_refiners", {})
    if key not in cache:
        t5 = lift.path / CONFIG_FILE  # read its config alone: the model is loaded once, below
        if not (lift.path / LM_CONFIG_FILE).is_file() and t5.is_file() and \
                json.loads(t5.read_text()).get("text_encoder", "pipeline") == "pipeline":
            raise ValueError(f"{node}: refiner {str(lift.path)!r} reads a diffusers pipeline's text encoder, which "
                             "ComfyUI does not give it; use an LM refiner (`promptlift train refiner --decoder lm`) or "
                             "one trained with its own `--text_encoder`.")
        cache[key] = Refiner.load(lift.path, budget)
    return cache[key]


class ApplySURAdapter:
    """The SUR-adapter on CLIP Text Encode's CONDITIONING of `text` (the same text): what `promptlift generate --lift
    sur-adapter=...` feeds the UNet, on ComfyUI's encoders. `strength` scales the adapter's change (0: none)."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"conditioning": ("CONDITIONING",), "clip": ("CLIP",),
                             "text": ("STRING", {"multiline": True, "default": "",
                                                 "tooltip": "The prompt the conditioning encodes."}),
                             "lift": (LIFT_TYPE,),
                             "strength": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 2.0, "step": 0.05})}}

    RETURN_TYPES = ("CONDITIONING",)
    FUNCTION = "apply"
    CATEGORY = CATEGORY

    def apply(self, conditioning, clip, text, lift, strength):
        return (adapt_conditioning(conditioning, clip, text, lift, strength),)


def adapt_conditioning(conditioning: list, clip, text: str, lift, strength: float = 1.0) -> list:
    """Every entry of `conditioning` (ComfyUI's encoding of `text`) adapted by the SUR-adapter `lift`."""
    node = "Apply SUR-adapter"
    lift = _require(lift, "sur-adapter", node)
    if not text.strip():
        raise ValueError(f"{node}: `text` is empty; give the prompt the conditioning encodes (the adapter's LLM teacher "
                         "reads it).")
    out = []
    for cond, extra in conditioning:
        _check_width(lift, cond.shape[-1], node)
        if cond.shape[1] > 77:
            raise ValueError(f"{node}: the conditioning holds {cond.shape[1]} tokens: ComfyUI encodes a prompt over 75 "
                             "tokens in chunks of 77, and the adapter reads one; shorten the prompt.")
        base = _embeds(cond, extra, pooled=lift.adapter.pooled is not None)
        lift.set_weight(strength)
        out.append(_conditioning(lift.edit_prompt_embeds(_ComfyTokenizer(clip), base, [text]), extra))
    return out


class ApplyTextCraftor:
    """A CLIP with TextCraftor's tuned text encoder(s): every weight the run tuned (embeddings, LayerNorms, biases
    included), as a patch at `strength` (1: the tuned encoder; 0.5: half-way in weight space)."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"clip": ("CLIP",), "lift": (LIFT_TYPE,),
                             "strength": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.05})}}

    RETURN_TYPES = ("CLIP",)
    FUNCTION = "apply"
    CATEGORY = CATEGORY

    def apply(self, clip, lift, strength):
        patched = clip.clone()
        patched.add_patches(textcraftor_patches(clip, lift), strength)
        return (patched,)


def textcraftor_patches(clip, lift) -> dict:
    """{ComfyUI CLIP key: (tuned - current,)}: ComfyUI's "diff" patches of every weight TextCraftor tuned."""
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    from ..methods.textcraftor.lift import ENCODERS

    node = "Apply TextCraftor"
    lift = _require(lift, "textcraftor", node)
    folders = [Path(f) for f, _ in lift.parts if f != "base"]
    if len(lift.parts) != 1 or len(folders) != 1:
        raise ValueError(f"{node}: the lift is a mix of {len(lift.parts)} runs; load one run's folder (mix them with "
                         "two nodes' strengths, or with `promptlift.TextCraftorLift` in Python).")
    folder = folders[0]
    tuned = {name: folder / name for name in ENCODERS if (folder / name / "config.json").is_file()}
    if not tuned:
        raise ValueError(f"{node}: {str(folder)!r} holds a LoRA, not the tuned encoder's weights; load its kohya file "
                         "(`promptlift export lora`) with ComfyUI's LoraLoader, or train with full weights "
                         "(`--use_lora false`) for this node.")
    current = clip.get_sd()
    patches = {}
    loaded = lift.__dict__.setdefault("_comfyui_states", {})  # read from disk once per lift, not per queued prompt
    for name, path in tuned.items():
        cls = CLIPTextModelWithProjection if name == "text_encoder_2" else CLIPTextModel
        if name not in loaded:
            loaded[name] = cls.from_pretrained(path).state_dict()
        state = loaded[name]
        prefix = next((p for p in ENCODER_PREFIXES[name] if any(k.startswith(p) for k in current)), None)
        if prefix is None:
            raise ValueError(f"{node}: {str(folder)!r} tunes {name}, which this CLIP does not have (its encoders: "
                             f"{sorted({k.split('.')[0] for k in current})}); load a lift trained on this model.")
        for key, value in state.items():
            if key.endswith("position_ids"):
                continue  # a buffer, not a weight
            target = prefix + _comfy_key(key)
            if target not in current:
                raise ValueError(f"{node}: the tuned {name} has weight {key!r}, which this CLIP lacks; load a lift "
                                 "trained on this checkpoint's model.")
            if current[target].shape != value.shape:
                raise ValueError(f"{node}: the tuned {name}'s {key} is {tuple(value.shape)}, this CLIP's "
                                 f"{tuple(current[target].shape)}: the encoder's widths do not fit this CLIP; load a "
                                 "lift trained on this checkpoint's model.")
            patches[target] = (value.float() - current[target].float(),)
    return patches


def _comfy_key(key: str) -> str:
    """A transformers CLIPTextModel key as ComfyUI's CLIP names it (inside `clip_l.transformer.` and the like):
    "text_model.encoder...", whether transformers nests the weights under text_model (4.x) or not (5.x);
    SDXL's text_projection.weight, a Linear in both, as it is."""
    key = key.removeprefix("text_model.")
    return key if key.startswith("text_projection") else f"text_model.{key}"


class LiftedStack:
    """The lifted stack in one node, composed as `promptlift generate --lifted` composes it: the refiner rewrites
    `text` (with the options its folder records), the SUR-adapter adapts the base encoding of the rewrite, and the
    TextCraftor encoder's change of that encoding is added, times `textcraftor_alpha`. Leave a lift unconnected to go
    without it; quality-tuning is ComfyUI's LoraLoader on the MODEL (the stack's strength: 2.5)."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"clip": ("CLIP",), "text": ("STRING", {"multiline": True, "default": ""}),
                             "textcraftor_alpha": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.05}),
                             "sur_strength": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 2.0, "step": 0.05})},
                "optional": {"refiner": (LIFT_TYPE,), "sur_adapter": (LIFT_TYPE,), "textcraftor": (LIFT_TYPE,)}}

    RETURN_TYPES = ("CONDITIONING", "STRING")
    RETURN_NAMES = ("conditioning", "prompt")
    FUNCTION = "apply"
    CATEGORY = CATEGORY

    def apply(self, clip, text, textcraftor_alpha, sur_strength, refiner=None, sur_adapter=None, textcraftor=None):
        if not text.strip():
            raise ValueError("Lifted stack: `text` is empty; give the plain prompt.")
        prompt = text
        if refiner is not None:
            refiner.refiner = refiner_of(refiner, clip, "Lifted stack")
            prompt, = refiner.rewrite_prompts([text])
        base = _encode(clip, prompt)
        cond = adapt_conditioning(base, clip, prompt, sur_adapter, sur_strength) if sur_adapter is not None else base
        if textcraftor is not None:  # its encoder's change of the base encoding, added last
            tuned = _encode(ApplyTextCraftor().apply(clip, textcraftor, 1.0)[0], prompt)
            cond = [[c + textcraftor_alpha * (t - b), _plus_pooled(ce, be, te, textcraftor_alpha)]
                    for (c, ce), (b, be), (t, te) in zip(cond, base, tuned)]
        return cond, prompt


def _plus_pooled(extra: dict, base: dict, tuned: dict, alpha: float) -> dict:
    out = dict(extra)
    if all(d.get("pooled_output") is not None for d in (extra, base, tuned)):
        out["pooled_output"] = extra["pooled_output"] + alpha * (tuned["pooled_output"] - base["pooled_output"])
    return out


def _encode(clip, text: str) -> list:
    """CLIP Text Encode's own encoding of `text`: its CONDITIONING."""
    return clip.encode_from_tokens_scheduled(clip.tokenize(text))


NODE_CLASS_MAPPINGS = {"PromptliftLoadLift": LoadLift, "PromptliftRefinePrompt": RefinePrompt,
                       "PromptliftApplySURAdapter": ApplySURAdapter, "PromptliftApplyTextCraftor": ApplyTextCraftor,
                       "PromptliftLiftedStack": LiftedStack}
NODE_DISPLAY_NAME_MAPPINGS = {"PromptliftLoadLift": "Load lift (promptlift)",
                              "PromptliftRefinePrompt": "Refine prompt (promptlift)",
                              "PromptliftApplySURAdapter": "Apply SUR-adapter (promptlift)",
                              "PromptliftApplyTextCraftor": "Apply TextCraftor (promptlift)",
                              "PromptliftLiftedStack": "Lifted stack (promptlift)"}
