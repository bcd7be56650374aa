"""Train TextCraftor (Li et al. 2024, arXiv 2403.18978): the text encoder alone, by reward gradients.

Per micro-batch of prompts: encode them with the frozen original encoder (first steps, no gradient) and with the
trainable one (last K steps), sample from noise, decode, score with the weighted rewards and minimise
-sum_i w_i * mean(reward_i). UNet, VAE and rewards are frozen: gradients pass through them into the encoder and
never pile up in them. `train: unet_lora` runs the same loop with a UNet LoRA as the only trainable weights.
Every `eval_steps` the held-out prompts are generated with the paper's hybrid schedule and judged against the
base model by an evaluation judge that is not a training reward; the best weights go to best/.
"""

from __future__ import annotations

import copy
from pathlib import Path

import diffusers
import torch
from accelerate.utils import set_seed
from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline

from ...data.prompts import read_prompts
from ...pipeline import PromptEmbeds, encode_prompts, load_pipeline
from ...rewards import load_reward, parse_reward_options
from ...training import batch_seed, epoch_indices
from ...training.diffusion import UNET_LORA_TARGETS, sdxl_time_ids
from ...files import atomic_dir, atomic_write_json
from ..common import MethodTrainer, freeze_pipeline
from ..heldout import HeldOutEvaluator
from .config import TextCraftorConfig, parse_weighted
from .lift import INFO_FILE, TextCraftorLift, swapped
from .sampling import Conditioning, decode, sample_with_grad

__all__ = ["TextCraftorTrainer", "save_tuned", "train", "trainable_module"]

ENCODER_LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "out_proj"]


def trainable_module(pipe, cfg: TextCraftorConfig) -> torch.nn.Module:
    """Freeze everything, then make trainable what `cfg` tunes: the encoder(s) (all weights or a LoRA), or a UNet LoRA."""
    from peft import LoraConfig

    freeze_pipeline(pipe)
    if cfg.train == "unet_lora":
        pipe.unet.add_adapter(LoraConfig(r=cfg.lora_rank, lora_alpha=cfg.lora_alpha, init_lora_weights="gaussian",
                                         target_modules=UNET_LORA_TARGETS))
        return pipe.unet
    modules = {}
    for name in cfg.text_encoders:
        encoder = getattr(pipe, name, None)
        if encoder is None:
            raise ValueError(f"`text_encoders` names {name!r}, which this {type(pipe).__name__} does not have.")
        if cfg.use_lora:
            encoder.add_adapter(LoraConfig(r=cfg.lora_rank, lora_alpha=cfg.lora_alpha, init_lora_weights="gaussian",
                                           target_modules=ENCODER_LORA_TARGETS))
        else:
            encoder.requires_grad_(True)
        modules[name] = encoder
    return torch.nn.ModuleDict(modules)


def save_tuned(pipe, cfg: TextCraftorConfig, folder: Path, extra: dict | None = None) -> Path:
    """A diffusers `text_encoder/` (`text_encoder_2/`) folder, or `pytorch_lora_weights.safetensors`, atomically,
    with textcraftor.json (switch step, rewards) beside it."""
    from peft.utils import get_peft_model_state_dict

    cls = StableDiffusionXLPipeline if isinstance(pipe, StableDiffusionXLPipeline) else StableDiffusionPipeline
    with atomic_dir(folder) as tmp:
        if cfg.train == "unet_lora":
            cls.save_lora_weights(tmp, unet_lora_layers=get_peft_model_state_dict(pipe.unet))
        elif cfg.use_lora:
            layers = {f"{name}_lora_layers": get_peft_model_state_dict(getattr(pipe, name)) for name in cfg.text_encoders}
            cls.save_lora_weights(tmp, **layers)
        else:
            for name in cfg.text_encoders:
                getattr(pipe, name).save_pretrained(tmp / name)
        atomic_write_json(tmp / INFO_FILE, {"switch_step": cfg.switch_step, "train": cfg.train, "reward": cfg.rewards,
                                            "base": cfg.pretrained_model_name_or_path, **(extra or {})})
    return folder


def encode_conditioning(pipe, texts: list[str], guided: bool, size: int, grad: bool = False) -> Conditioning:
    """The UNet's conditioning for `texts`. With CFG the unconditional embedding, the same for every prompt, is
    encoded once and expanded over the batch: the same values and gradient as encoding it B times, at the
    activation memory of one prompt (the encoder's activations dominate a step on small latents)."""
    embeds = encode_prompts(pipe, texts, do_classifier_free_guidance=False, grad=grad)
    if guided:
        negative = encode_prompts(pipe, texts[:1], grad=grad)  # diffusers' negative (SDXL may zero it)
        b = len(texts)
        embeds.negative_prompt_embeds = negative.negative_prompt_embeds.expand(b, -1, -1)
        if negative.negative_pooled_prompt_embeds is not None:
            embeds.negative_pooled_prompt_embeds = negative.negative_pooled_prompt_embeds.expand(b, -1)
    return _conditioning(pipe, embeds, size)


def _conditioning(pipe, embeds: PromptEmbeds, size: int) -> Conditioning:
    """[negative; positive] stacked for CFG, with SDXL's pooled embedding and micro-conditioning."""
    hidden = embeds.prompt_embeds if embeds.negative_prompt_embeds is None else torch.cat(
        [embeds.negative_prompt_embeds, embeds.prompt_embeds])
    if embeds.pooled_prompt_embeds is None:
        return Conditioning(hidden)
    pooled = embeds.pooled_prompt_embeds if embeds.negative_pooled_prompt_embeds is None else torch.cat(
        [embeds.negative_pooled_prompt_embeds, embeds.pooled_prompt_embeds])
    return Conditioning(hidden, {"text_embeds": pooled, "time_ids": sdxl_time_ids(size, size, len(hidden), hidden.device, hidden.dtype)})


class TextCraftorTrainer(MethodTrainer):
    """The text encoder(s) (or a UNet LoRA) tuned by the gradients of the weighted rewards through the last
    `grad_steps` sampling steps."""

    method = "textcraftor"

    def __init__(self, cfg: TextCraftorConfig):
        options = parse_reward_options(cfg.reward_option)
        self.rewards = [(name, weight, load_reward(name, **options.get(name, {})))
                        for name, weight in parse_weighted(cfg.rewards, "rewards")]
        for name, _, reward in self.rewards:
            if not reward.differentiable:
                raise ValueError(f"reward {name!r} is not differentiable, so it cannot train by back-propagation.")
        self.prompts = read_prompts(cfg.prompts, cfg.prompt_column, limit=cfg.max_train_prompts)
        pipe = load_pipeline(cfg.pretrained_model_name_or_path, dtype="float32", config=cfg.model_config)
        pipe.set_progress_bar_config(disable=True)
        self.originals = {n: copy.deepcopy(getattr(pipe, n)).requires_grad_(False).eval()
                          for n in ("text_encoder", "text_encoder_2") if getattr(pipe, n, None) is not None}
        super().__init__(cfg, pipe)  # records the base before any LoRA joins it
        set_seed(cfg.seed)  # weights initialised below are a function of the seed (imports may reseed torch at random)
        self.model = trainable_module(pipe, cfg)
        for _, _, reward in self.rewards:
            reward.to(pipe.device)
        try:
            self.scheduler = getattr(diffusers, cfg.scheduler).from_config(pipe.scheduler.config)
        except AttributeError:
            raise ValueError(f"`scheduler` {cfg.scheduler!r} is not a diffusers scheduler class (e.g. DDIMScheduler).") from None
        self.size = cfg.resolution or pipe.unet.config.sample_size * pipe.vae_scale_factor
        self.evaluator = HeldOutEvaluator.from_config(pipe, cfg)

    def batch(self, index: int) -> dict:
        cfg = self.cfg
        return {"prompts": [self.prompts[k] for k in epoch_indices(index, len(self.prompts), cfg.train_batch_size, cfg.seed)],
                "seed": batch_seed(cfg.seed, index, stride=7919)}

    def loss(self, model, batch):
        cfg, pipe, size, texts = self.cfg, self.pipe, self.size, batch["prompts"]
        guided = cfg.guidance_scale > 1
        with swapped(pipe, self.originals):
            frozen = encode_conditioning(pipe, texts, guided, size)
        trainable = frozen if cfg.train == "unet_lora" else encode_conditioning(pipe, texts, guided, size, grad=True)
        shape = (len(texts), pipe.unet.config.in_channels, size // pipe.vae_scale_factor, size // pipe.vae_scale_factor)
        noise = torch.randn(shape, generator=torch.Generator().manual_seed(batch["seed"])).to(pipe.device)
        latents = sample_with_grad(pipe.unet, self.scheduler, noise * self.scheduler.init_noise_sigma, frozen, trainable,
                                   cfg.num_inference_steps, cfg.grad_steps, cfg.guidance_scale, cfg.gradient_checkpointing)
        images = decode(pipe.vae, latents, cfg.gradient_checkpointing)
        loss, logs = torch.zeros((), device=images.device), {}
        for name, weight, reward in self.rewards:
            score = reward(images, texts).mean()
            loss = loss - weight * score
            logs[f"reward/{name}"] = score.detach()
        return loss, logs

    def evaluate(self, model, step):
        lifts = [] if self.cfg.train == "unet_lora" else [
            TextCraftorLift("textcraftor", None, switch_step=self.cfg.switch_step, originals=self.originals)]
        return self.evaluator(lifts)

    def save(self, model, folder, step=None):
        save_tuned(self.pipe, self.cfg, folder, None if step is None else {"step": step})  # the pipeline's modules train


def train(cfg: TextCraftorConfig) -> Path:
    """Tune `pretrained_model_name_or_path`'s text encoder(s) (or a UNet LoRA) on `prompts`; returns the output folder."""
    return TextCraftorTrainer(cfg).train()
