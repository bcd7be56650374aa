"""Tiny random Stable Diffusion pipelines (SD1.x-, SD2.x- and SDXL-shaped), built offline.

Used by the tests and by anyone who wants to exercise promptlift without downloading a model.
Their images are noise: they have the architecture of the real thing, not its training.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from .files import atomic_dir

if TYPE_CHECKING:  # torch, diffusers and transformers load when a pipeline is built, not when the config is read
    from diffusers import AutoencoderKL
    from transformers import CLIPTextConfig, CLIPTokenizer

__all__ = ["Arch", "ARCHS", "TinyPipelineConfig", "byte_level_clip_tokenizer", "build_tiny_pipeline", "save_tiny_causal_lm",
           "save_tiny_pipeline"]

Arch = Literal["sd1", "sd2", "sdxl"]
ARCHS: tuple[str, ...] = ("sd1", "sd2", "sdxl")


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP's reversible map from bytes to printable unicode characters."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


def byte_level_clip_tokenizer(model_max_length: int = 77) -> CLIPTokenizer:
    """A CLIP tokenizer with one token per byte (and per word-final byte), made without any download."""
    from transformers import CLIPTokenizer

    chars = list(_bytes_to_unicode().values())
    tokens = ["<|startoftext|>", "<|endoftext|>", *chars, *(c + "</w>" for c in chars)]
    vocab = {t: i for i, t in enumerate(tokens)}
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=model_max_length)


def _text_config(vocab_size: int, hidden_size: int = 32, projection_dim: int = 32, act: str = "quick_gelu") -> CLIPTextConfig:
    from transformers import CLIPTextConfig

    return CLIPTextConfig(
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        intermediate_size=37,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=77,
        projection_dim=projection_dim,
        hidden_act=act,
        bos_token_id=0,
        eos_token_id=1,
        pad_token_id=1,
    )


def _vae(latent_channels: int = 4, sample_size: int = 32) -> AutoencoderKL:
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        block_out_channels=(16, 32),
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        latent_channels=latent_channels,
        norm_num_groups=8,
        sample_size=sample_size,
    )


def build_tiny_pipeline(arch: Arch = "sd1", seed: int = 0, text_encoder_2_width: int = 32):
    """A random pipeline of the given architecture, about 1M parameters, 16 px latents for 32 px images.

    `text_encoder_2_width`: SDXL's second encoder's width (as in SDXL, where it is 1280 beside 768, a width apart
    from the first's tells the two apart in a single-file checkpoint).

    sd1: epsilon prediction, quick-GELU text encoder, cross-attention 32.
    sd2: v-prediction, GELU text encoder, linear projections in the transformer blocks.
    sdxl: two text encoders (the second with projection), pooled embeddings and time ids.
    """
    import torch
    from diffusers import (DDIMScheduler, EulerDiscreteScheduler, StableDiffusionPipeline, StableDiffusionXLPipeline,
                           UNet2DConditionModel)
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    if arch not in ARCHS:
        raise ValueError(f"`arch` must be one of {list(ARCHS)}, got {arch!r}.")
    torch.manual_seed(seed)
    tokenizer = byte_level_clip_tokenizer()
    vocab = len(tokenizer)
    common = dict(
        block_out_channels=(32, 64),
        layers_per_block=1,
        sample_size=16,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        norm_num_groups=8,
    )
    scheduler_kwargs = dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False)
    if arch == "sdxl":
        unet = UNet2DConditionModel(
            **common,
            attention_head_dim=(2, 4),
            use_linear_projection=True,
            cross_attention_dim=32 + text_encoder_2_width,
            addition_embed_type="text_time",
            addition_time_embed_dim=8,
            transformer_layers_per_block=(1, 2),
            projection_class_embeddings_input_dim=6 * 8 + text_encoder_2_width,  # 6 time ids x 8 + pooled text
        )
        return StableDiffusionXLPipeline(
            vae=_vae(),
            text_encoder=CLIPTextModel(_text_config(vocab, act="gelu")),
            text_encoder_2=CLIPTextModelWithProjection(_text_config(vocab, text_encoder_2_width, text_encoder_2_width, "gelu")),
            tokenizer=tokenizer,
            tokenizer_2=byte_level_clip_tokenizer(),
            unet=unet,
            scheduler=EulerDiscreteScheduler(**{k: v for k, v in scheduler_kwargs.items() if k != "clip_sample"}),
        )
    sd2 = arch == "sd2"
    unet = UNet2DConditionModel(
        **common,
        cross_attention_dim=32,
        attention_head_dim=(2, 4) if sd2 else 8,
        use_linear_projection=sd2,
    )
    scheduler = DDIMScheduler(**scheduler_kwargs, prediction_type="v_prediction" if sd2 else "epsilon",
                              set_alpha_to_one=False, steps_offset=1)
    return StableDiffusionPipeline(
        vae=_vae(),
        text_encoder=CLIPTextModel(_text_config(vocab, act="gelu" if sd2 else "quick_gelu")),
        tokenizer=tokenizer,
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


def save_tiny_pipeline(arch: Arch, output_dir: str | Path, seed: int = 0, **kwargs) -> Path:
    """Build a tiny random pipeline (`kwargs`: see `build_tiny_pipeline`) and save it as a diffusers folder."""
    with atomic_dir(output_dir) as tmp:
        build_tiny_pipeline(arch, seed, **kwargs).save_pretrained(tmp)
    return Path(output_dir)


@dataclass
class TinyPipelineConfig:
    """Build a tiny random Stable Diffusion pipeline offline (for tests and trying the tools; images are noise)."""

    output_dir: Path = field(default=Path(".cache/tiny-sd1"), metadata={"help": "Folder to save the pipeline in."})
    arch: Literal["sd1", "sd2", "sdxl"] = field(default="sd1", metadata={"help": "Architecture to mimic."})
    seed: int = field(default=0, metadata={"help": "Seed of the random weights."})
    text_encoder_2_width: int = field(default=48, metadata={
        "help": "SDXL: the second text encoder's width; apart from the first's (32), as in SDXL, so that a single-file "
                "checkpoint of the pipeline loads back.", "min": 8, "max": 1024})


# a chat template in the form instruction LMs ship (ChatML), for the tiny Llama
_CHATML = ("{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
           "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


def save_tiny_causal_lm(arch: Literal["gpt2", "llama"], output_dir: str | Path, seed: int = 0) -> Path:
    """A tiny random causal LM and its tokenizer (byte-level BPE, made offline), saved as a transformers folder: GPT-2
    without a chat template, Llama with a ChatML one. For tests of the LM refiner; it writes noise."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    chars = list(_bytes_to_unicode().values())
    core = Tokenizer(models.BPE(vocab={t: i for i, t in enumerate(specials + chars)}, merges=[]))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, eos_token="<|endoftext|>", pad_token="<|endoftext|>",
                                        additional_special_tokens=specials[1:])
    if arch == "llama":
        tokenizer.chat_template = _CHATML
    torch.manual_seed(seed)
    vocab = len(tokenizer)
    if arch == "gpt2":
        model = GPT2LMHeadModel(GPT2Config(vocab_size=vocab, n_positions=512, n_embd=32, n_layer=2, n_head=2,
                                           bos_token_id=0, eos_token_id=0))
    else:
        model = LlamaForCausalLM(LlamaConfig(vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                             num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                                             bos_token_id=0, eos_token_id=0, pad_token_id=0))
    with atomic_dir(output_dir) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    return Path(output_dir)
