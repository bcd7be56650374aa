"""kohya / A1111 / ComfyUI LoRA files from promptlift's outputs.

The kohya format (sd-scripts' `networks/lora.py`) names each adapted layer by its module path with "_" for "." under
`lora_unet_`, `lora_te_` (SDXL: `lora_te1_`, `lora_te2_`), and stores `lora_down.weight` (A, (r, in)),
`lora_up.weight` (B, (out, r)) and `alpha` (a scalar: the change is B @ A x alpha / r). A1111, ComfyUI and diffusers'
`load_lora_weights` read it. A full-weight change (TextCraftor's tuned encoder, a full quality-tuned UNet) is turned
into a LoRA by a truncated SVD of each linear layer's change, as sd-scripts' `extract_lora_from_models.py` does.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch

__all__ = ["KOHYA_PREFIXES", "Extraction", "diffusers_lora_to_kohya", "extract_lora", "read_diffusers_lora"]

# pipeline component -> kohya prefix, for one-encoder (SD 1.x/2.x) and two-encoder (SDXL) pipelines
KOHYA_PREFIXES = {False: {"unet": "lora_unet", "text_encoder": "lora_te"},
                  True: {"unet": "lora_unet", "text_encoder": "lora_te1", "text_encoder_2": "lora_te2"}}


def read_diffusers_lora(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
    """(state dict, {component: lora_alpha}) of a diffusers `pytorch_lora_weights.safetensors`. A component whose
    alpha the file does not record gets alpha = rank (scale 1), as diffusers assumes when it loads such a file."""
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        state = {k: f.get_tensor(k) for k in f.keys()}
        metadata = json.loads((f.metadata() or {}).get("lora_adapter_metadata", "{}"))
    alphas = {key.rpartition(".")[0]: float(value) for key, value in metadata.items() if key.endswith(".lora_alpha")}
    for key, value in state.items():
        component = key.split(".", 1)[0]
        if component not in alphas and key.endswith("lora_A.weight"):
            alphas[component] = float(value.shape[0])
    return state, alphas


def diffusers_lora_to_kohya(state: dict[str, torch.Tensor], alphas: dict[str, float], sdxl: bool,
                            unet_config: dict | None = None) -> dict[str, torch.Tensor]:
    """Keys `COMPONENT.MODULE.lora_A.weight` / `lora_B.weight` -> kohya `PREFIX_MODULE.lora_down.weight` /
    `lora_up.weight` / `alpha`. SDXL's UNet modules are named as kohya's SDXL files name them, by the original UNet's
    blocks (`lora_unet_input_blocks_4_1_...`, from `unet_config`), which A1111, ComfyUI and diffusers all read; SD 1.x
    and 2.x's keep the diffusers block names kohya's own SD files use (`lora_unet_down_blocks_1_...`)."""
    from .single_file import unet_to_original

    prefixes = KOHYA_PREFIXES[sdxl]
    if sdxl and unet_config is None and any(k.startswith("unet.") for k in state):
        raise ValueError("an SDXL UNet LoRA needs the UNet's config to name its blocks as kohya's SDXL files do.")
    out = {}
    for key, value in state.items():
        component, _, rest = key.partition(".")
        if component not in prefixes:
            raise ValueError(f"LoRA key {key!r} is of component {component!r}; a kohya file holds "
                             f"{', '.join(prefixes)} only.")
        module, _, part = rest.rpartition(".lora_")
        if component == "unet" and sdxl:
            module = next(iter(unet_to_original({f"{module}.weight": value}, unet_config))).removesuffix(".weight")
        elif component != "unet" and not module.startswith(("text_model.", "text_projection")):
            module = f"text_model.{module}"  # transformers >= 5.6 flattened CLIPTextModel; kohya names keep text_model
        name = f"{prefixes[component]}_{module.replace('.', '_')}"
        if part == "A.weight":
            out[f"{name}.lora_down.weight"] = value.contiguous()
            out[f"{name}.alpha"] = torch.tensor(alphas[component], dtype=torch.float32)
        elif part == "B.weight":
            out[f"{name}.lora_up.weight"] = value.contiguous()
        else:
            raise ValueError(f"LoRA key {key!r} is neither lora_A nor lora_B (DoRA and bias LoRAs are not exported).")
    return out


@dataclass
class Extraction:
    """A LoRA extracted from a full-weight change, and how much of the change it kept."""

    state: dict[str, torch.Tensor] = field(default_factory=dict)  # diffusers-format keys
    alphas: dict[str, float] = field(default_factory=dict)
    lost: list[str] = field(default_factory=list)  # changed weights a LoRA of linear layers cannot carry
    change_sq: float = 0.0  # squared Frobenius norm of the linear layers' change, and of the part the LoRA keeps
    kept_sq: float = 0.0
    lost_sq: float = 0.0  # squared norm of the change of every other weight (embeddings, biases, norms, convolutions)

    @property
    def kept(self) -> float:
        """||LoRA change||^2 / ||change||^2 over every changed weight, linear or not (1 when nothing changed)."""
        total = self.change_sq + self.lost_sq
        return self.kept_sq / total if total > 0 else 1.0

    @property
    def kept_linear(self) -> float:
        """The same over the linear layers' weights alone, which a LoRA can carry."""
        return self.kept_sq / self.change_sq if self.change_sq > 0 else 1.0

    def summary(self) -> str:
        lost = f"; not carried (changed, but not linear weights): {', '.join(self.lost[:5])}" \
            f"{' …' if len(self.lost) > 5 else ''} ({len(self.lost)})" if self.lost else ""
        return (f"the LoRA keeps {100 * self.kept:.1f} % of the whole change (squared Frobenius norm over every "
                f"parameter; {100 * self.kept_linear:.1f} % of the linear layers'){lost}")


@torch.no_grad()
def extract_lora(component: str, base: torch.nn.Module, tuned: torch.nn.Module, rank: int,
                 extraction: Extraction | None = None) -> Extraction:
    """Add to `extraction` the rank-`rank` LoRA of every linear layer whose weights differ between `base` and `tuned`
    (best rank-r approximation of the change by SVD; alpha = rank, scale 1)."""
    extraction = extraction or Extraction()
    tuned_modules = dict(tuned.named_modules())
    for name, module in base.named_modules():
        other = tuned_modules.get(name)
        if not isinstance(module, torch.nn.Linear) or other is None:
            continue
        delta = (other.weight.float() - module.weight.float()).cpu()  # (out, in)
        if not delta.abs().max() > 0:
            continue
        u, s, vh = torch.linalg.svd(delta, full_matrices=False)
        r = min(rank, s.numel())
        extraction.state[f"{component}.{name}.lora_A.weight"] = (s[:r, None] * vh[:r]).contiguous()  # (r, in)
        # alpha is `rank` for every layer: a layer of lower rank r is scaled by rank / r, so B carries r / rank
        extraction.state[f"{component}.{name}.lora_B.weight"] = (u[:, :r] * (r / rank)).contiguous()  # (out, r)
        extraction.change_sq += float((s ** 2).sum())
        extraction.kept_sq += float((s[:r] ** 2).sum())
    linear = {f"{n}.{p}" for n, m in base.named_modules() if isinstance(m, torch.nn.Linear) for p in ("weight",)}
    tuned_state = tuned.state_dict()
    for key, value in base.state_dict().items():
        if key in linear or key not in tuned_state or torch.equal(value.cpu(), tuned_state[key].cpu()):
            continue
        extraction.lost.append(f"{component}.{key}")
        extraction.lost_sq += float((tuned_state[key].float().cpu() - value.float().cpu()).pow(2).sum())
    extraction.alphas[component] = float(rank)
    return extraction
