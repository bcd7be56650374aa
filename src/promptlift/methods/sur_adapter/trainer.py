"""Train a SUR-adapter (Zhong et al. 2023, arXiv 2305.05189) with the diffusion model frozen.

1. Cache, per triple: the VAE posterior of the image, the frozen text encoder's embedding of the simple and of
   the complex prompt, the simple prompt's padding mask, and the LLM teacher's pooled features (on disk too) or,
   with `llm_tokens`, its token states (float16) and their mask.
2. Train the adapter on: the diffusion loss of the frozen UNet on the image conditioned on the *adapted* simple
   embedding (its gradient flows through the UNet into the adapter), + `llm_weight` x KL(LLM -> transformer
   output) + `complex_weight` x the complex-prompt term: the paper's KL(complex embedding -> adapted embedding),
   or (`complex_target: unet`) the MSE between the frozen UNet's predictions from the adapted simple embedding
   and from the complex prompt's embedding at the same noisy latents - a target that does not ask tokens at
   different positions of two different prompts to match - or (`complex_target: tokens`) the MSE between the
   adapted and the complex embedding at every position the UNet reads, a target per token rather than a weak KL.
   A term that asks the adapter to classify rather than regress: `attribute_weight` x the cross-entropy of a linear
   head reading class labels off the adapted embedding (`attribute_columns`, where the data carry labels).
3. Every `eval_steps`, generate held-out simple prompts with fixed seeds through the lift seam and judge them
   against the base model's images (semantic accuracy, aesthetic win rate); keep the best adapter in best/.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from pathlib import Path

import torch
import torch.nn.functional as F
from accelerate.utils import set_seed
from diffusers import DDPMScheduler, StableDiffusionXLPipeline
from tqdm.auto import tqdm

from ...data.records import iter_records
from ...pipeline import apply_lifts, encode_prompts, load_lifts, prompt_padding_mask, rewrite_prompts
from ...training import batch_seed, epoch_indices
from ...training.diffusion import latent_dist_params, noised, sample_latents, sdxl_time_ids
from ...files import atomic_dir, atomic_path, atomic_write_json
from ...images import images_to_tensor
from ..common import MethodTrainer, load_frozen_pipeline
from ..heldout import HeldOutEvaluator
from .config import SURAdapterConfig
from .lift import SURAdapterLift
from .llm import LLMFeatures, masked_mean
from .losses import feature_kl, sur_objective
from .model import SURAdapter

__all__ = ["SURAdapterTrainer", "attribute_labels", "build_cache", "cached_features", "row_columns", "save_adapter", "train"]


@torch.no_grad()
def build_cache(pipe, cfg: SURAdapterConfig, teacher: LLMFeatures, batch_size: int = 64) -> dict[str, torch.Tensor]:
    """Stacked tensors over the triples: params, simple, complex, mask, llm (and pooled, for SDXL)."""
    records = []
    for rec in iter_records(cfg.train_data_dir):
        if cfg.max_train_samples is not None and len(records) >= cfg.max_train_samples:
            break
        if rec.image is None:
            raise ValueError(f"triple {rec.key!r}: the image is unreadable ({rec.error}); rebuild the triples.")
        missing = [c for c in (cfg.simple_column, *cfg.extra_simple_columns, cfg.complex_column) if not rec.meta.get(c)]
        if missing:
            raise ValueError(f"triple {rec.key!r} has no prompt in {missing}; columns present: {sorted(rec.meta)}. "
                             "Set `simple_column` / `complex_column`.")
        records.append(rec)
    if not records:
        raise ValueError(f"`train_data_dir` {str(cfg.train_data_dir)!r} holds no triples.")
    parts: dict[str, list[torch.Tensor]] = {k: [] for k in ("params", "simple", "complex", "mask", "llm", "pooled",
                                                            "llm_tokens", "llm_mask", "source", "record")}
    rewriters = [[]] + ([_rewriting_lifts(pipe, cfg.refiner)] if cfg.refiner else [])
    rows = 0
    for start in tqdm(range(0, len(records), batch_size), desc="cache", unit="batch"):
        batch = records[start : start + batch_size]
        params = latent_dist_params(pipe.vae, images_to_tensor([r.image for r in batch]).to(pipe.device)).cpu()
        complex_ = encode_prompts(pipe, [r.meta[cfg.complex_column] for r in batch],
                                  do_classifier_free_guidance=False).prompt_embeds.cpu()
        # one training row per simple column, and per column its rewrite by the refiner (as the lifted stack reads it)
        unrewritten = {}  # column -> the row of its first prompt as written, before any rewrite
        for column, lifts in itertools.product((cfg.simple_column, *cfg.extra_simple_columns), rewriters):
            simple = rewrite_prompts([r.meta[column] for r in batch], lifts)
            s = encode_prompts(pipe, simple, do_classifier_free_guidance=False)
            first = unrewritten.setdefault(column, rows)
            parts["source"].append(torch.arange(first, first + len(batch)))  # each row's prompt before the rewrite
            parts["record"].append(torch.arange(start, start + len(batch)))  # each row's triple
            rows += len(batch)
            parts["params"].append(params)
            parts["complex"].append(complex_)
            parts["simple"].append(s.prompt_embeds.cpu())
            if s.pooled_prompt_embeds is not None:
                parts["pooled"].append(s.pooled_prompt_embeds.cpu())
            parts["mask"].append(prompt_padding_mask(pipe.tokenizer, simple, s.prompt_embeds.shape[1]))
            if cfg.llm_tokens:
                states, real = teacher.token_states(simple, cfg.llm_max_tokens)  # (B, T, D_llm), (B, T)
                parts["llm_tokens"].append(states.half())
                parts["llm_mask"].append(real)
                parts["llm"].append(masked_mean(states, real))
            else:
                parts["llm"].append(teacher(simple))
    cache = {k: torch.cat(v) for k, v in parts.items() if v}
    if cfg.llm_tokens:  # padded to llm_max_tokens per batch: keep the longest prompt's tokens only
        length = int(cache["llm_mask"].any(0).nonzero().max()) + 1
        cache["llm_tokens"], cache["llm_mask"] = cache["llm_tokens"][:, :length], cache["llm_mask"][:, :length]
    return cache


def attribute_labels(cfg: SURAdapterConfig, cache: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, list[str]]]:
    """(labels (rows, columns) of class indices, the classes of each column) of `attribute_columns`, read from the
    triples' metadata for every cached row (a refiner's rewrite of a prompt keeps its triple's labels)."""
    if "record" not in cache:
        raise ValueError(f"the attribute term needs the feature cache's `record` rows, which this cache predates: delete "
                         f"it from {str(cfg.feature_cache_dir)!r} to rebuild it.")
    meta = Path(cfg.train_data_dir) / "metadata.jsonl"
    with open(meta, encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()][: cfg.max_train_samples]
    missing = [c for c in cfg.attribute_columns if any(r.get(c) is None for r in rows)]
    if missing:
        raise ValueError(f"`attribute_columns` {missing} are missing from some rows of {meta}; columns present: "
                         f"{sorted(rows[0])}.")
    classes = {c: sorted({str(r[c]) for r in rows}) for c in cfg.attribute_columns}
    per_triple = torch.tensor([[classes[c].index(str(r[c])) for c in cfg.attribute_columns] for r in rows])
    return per_triple[cache["record"]], classes


def row_columns(cfg: SURAdapterConfig, cache: dict[str, torch.Tensor]) -> torch.Tensor:
    """(rows,): the index in (simple_column, *extra_simple_columns) of the column each cached row was written from.
    A triple's rows are cached in that order (each column as written, then its rewrites), so a row's column is its
    rank among its triple's rows."""
    if "record" not in cache:
        raise ValueError(f"telling rows by column needs the feature cache's `record` rows, which this cache predates: "
                         f"delete it from {str(cfg.feature_cache_dir)!r} to rebuild it.")
    record = cache["record"]
    order = torch.argsort(record, stable=True)
    ranked = record[order]
    rank = torch.empty_like(record)
    rank[order] = torch.arange(len(record)) - torch.searchsorted(ranked, ranked)
    rewriters = 2 if cfg.refiner else 1
    columns = 1 + len(cfg.extra_simple_columns)
    if int(rank.max()) >= columns * rewriters:
        raise ValueError(f"the feature cache holds {int(rank.max()) + 1} rows per triple, not {columns * rewriters} "
                         "(the columns and rewrites configured): rebuild it.")
    return rank // rewriters


def _rewriting_lifts(pipe, spec: str) -> list:
    """The lift `spec` (a refiner), loaded onto `pipe`, as a list for `rewrite_prompts` and the held-out check."""
    lifts = load_lifts([spec])
    apply_lifts(pipe, lifts)
    return lifts


def _lift_identity(spec: str | None) -> list | None:
    """What a rewriting lift's output depends on, for the cache key: its spec and its folder's files and their times."""
    if spec is None:
        return None
    path = load_lifts([spec])[0].path
    files = sorted(p for p in Path(path).rglob("*") if p.is_file()) if path is not None else []
    return [spec, str(path), [(p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in files]]


def _cache_path(cfg: SURAdapterConfig, teacher: LLMFeatures, tokens: bool) -> Path:
    meta = Path(cfg.train_data_dir) / "metadata.jsonl"
    key = json.dumps([str(Path(cfg.train_data_dir).resolve()), meta.stat().st_size, meta.stat().st_mtime_ns,
                      cfg.simple_column, cfg.extra_simple_columns, cfg.complex_column, cfg.max_train_samples,
                      _lift_identity(cfg.refiner),
                      str(cfg.pretrained_model_name_or_path), teacher.model_id, teacher.layer,
                      cfg.llm_max_tokens if tokens else None])
    return Path(cfg.feature_cache_dir) / f"sur-{hashlib.sha256(key.encode()).hexdigest()[:16]}.pt"


def cached_features(pipe, cfg: SURAdapterConfig, teacher: LLMFeatures) -> dict[str, torch.Tensor]:
    """`build_cache`, kept in `feature_cache_dir` under a key of everything it depends on (when that is set).

    A cache with the teacher's token states also serves a run that reads the pooled features only (an ablation). A
    kept cache is memory-mapped: batches read their rows from the file (a 50k-row cache is ~9 GB).
    """
    if cfg.feature_cache_dir is None:
        return build_cache(pipe, cfg, teacher)
    path = _cache_path(cfg, teacher, cfg.llm_tokens)
    with_tokens = _cache_path(cfg, teacher, True)
    if not path.is_file() and with_tokens.is_file():
        cache = torch.load(with_tokens, mmap=True)
        return {k: v for k, v in cache.items() if k not in ("llm_tokens", "llm_mask")}
    if path.is_file():
        return torch.load(path, mmap=True)
    cache = build_cache(pipe, cfg, teacher)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path, suffix=".pt") as tmp:
        torch.save(cache, tmp)
    return cache


def save_adapter(adapter: SURAdapter, cfg: SURAdapterConfig, folder: Path) -> Path:
    """config.json + model.safetensors (the LLM projection included) + teacher.json, atomically."""
    with atomic_dir(folder) as tmp:
        adapter.save_pretrained(tmp)
        spec = {"model": cfg.llm_model, "layer": cfg.llm_layer}
        if cfg.llm_tokens:  # the lift reads as many teacher tokens as training did
            spec["max_tokens"] = cfg.llm_max_tokens
        atomic_write_json(tmp / "teacher.json", spec)
    return folder


def _batch_fn(cfg: SURAdapterConfig, cache: dict[str, torch.Tensor], scale: float):
    """batch_fn(i): micro-batch i of the cached rows, with latents sampled for the rows the UNet terms read."""
    n, gen = len(cache["params"]), torch.Generator()
    if cfg.rewrite_target == "complex+change" and "source" not in cache:
        raise ValueError(f"`rewrite_target: {cfg.rewrite_target}` needs the feature cache's `source` rows, which this "
                         f"cache predates: delete it from {str(cfg.feature_cache_dir)!r} to rebuild it.")

    def batch_fn(i: int) -> dict:
        idx = torch.tensor(epoch_indices(i, n, cfg.train_batch_size, cfg.seed))
        gen.manual_seed(batch_seed(cfg.seed, i))
        batch = {k: v[idx] for k, v in cache.items() if k not in ("params", "source", "record")}
        if cfg.rewrite_target == "complex+change":  # a rewrite's row keeps the rewrite's change: base(rewrite) - base(prompt)
            batch["complex"] = batch["complex"] + batch["simple"] - cache["simple"][cache["source"][idx]]
        # the UNet terms read the first `diffusion_batch_size` rows
        batch["latents"] = sample_latents(cache["params"][idx[: cfg.diffusion_batch_size]], scale, gen)
        batch["seed"] = batch_seed(cfg.seed, i, stride=7919)
        return batch

    return batch_fn


def _loss_fn(cfg: SURAdapterConfig, pipe):
    """loss_fn(model, batch): the diffusion loss + the LLM and complex-prompt terms (module docstring, step 2)."""
    unet, scheduler = pipe.unet, DDPMScheduler.from_config(pipe.scheduler.config)
    xl = isinstance(pipe, StableDiffusionXLPipeline)

    def loss_fn(model, batch):
        device = next(model.parameters()).device
        if unet.device != device:
            unet.to(device)
        b = {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}
        projector = model.module if hasattr(model, "module") else model
        llm_in = (b["llm_tokens"].float() if cfg.llm_tokens else b["llm"]) if cfg.llm_at_inference else None
        adapted, hidden = model(b["simple"], b["mask"], llm_in, b.get("llm_mask"))  # (B, L, D) each
        k = len(b["latents"])
        added = None
        if xl:
            h, w = (s * pipe.vae_scale_factor for s in b["latents"].shape[-2:])
            added = {"text_embeds": projector.adapt_pooled(b["pooled"][:k], adapted[:k], b["mask"][:k]),
                     "time_ids": sdxl_time_ids(h, w, k, device)}
        noisy, t, target = noised(scheduler, b["latents"], torch.Generator().manual_seed(b["seed"]))
        unet_complex = cfg.complex_target == "unet" and cfg.complex_weight > 0
        pred = unet(noisy, t, adapted[:k], added_cond_kwargs=added).sample if cfg.diffusion_weight > 0 or unet_complex else None
        diffusion = F.mse_loss(pred.float(), target.float()) if cfg.diffusion_weight > 0 else torch.zeros((), device=device)
        if unet_complex:  # what the frozen UNet does with the complex prompt, at the same noisy latents
            with torch.no_grad():
                plain = None if added is None else {**added, "text_embeds": b["pooled"][:k]}
                from_complex = unet(noisy, t, b["complex"][:k], added_cond_kwargs=plain).sample
            complex_term = F.mse_loss(pred.float(), from_complex.float())
        elif cfg.complex_target == "tokens":  # every position the UNet reads, every row
            complex_term = F.mse_loss(adapted.float(), b["complex"].float())
        else:
            complex_term = feature_kl(adapted, b["complex"])
        total, logs = sur_objective(cfg.diffusion_weight * diffusion, hidden, projector.project_llm(b["llm"]),
                                    complex_term, b["mask"], cfg.llm_weight, cfg.complex_weight)
        logs["diffusion"] = diffusion.detach()
        if cfg.attribute_weight > 0:
            logits = projector.classify_attributes(adapted, llm_in, b.get("llm_mask"))
            labels = b["attributes"]  # -1: no label
            rows = (labels[:, 0] >= 0).sum().clamp_min(1)
            attributes = sum(F.cross_entropy(x.float(), labels[:, j], ignore_index=-1, reduction="sum")
                             for j, x in enumerate(logits)) / rows
            total, logs["attributes"] = total + cfg.attribute_weight * attributes, attributes.detach()
        if cfg.gate_columns:  # the base embedding of a prompt the base model reads right: leave it (label 0)
            gate = F.binary_cross_entropy_with_logits(projector.gate_logit(b["simple"], b["mask"]).float(), b["adapt"].float())
            total, logs["gate"] = total + cfg.gate_weight * gate, gate.detach()
        return total, logs

    return loss_fn


class SURAdapterTrainer(MethodTrainer):
    """The adapter on the frozen pipeline's prompt embeddings, on cached triples (module docstring)."""

    method = "sur-adapter"

    def __init__(self, cfg: SURAdapterConfig):
        pipe = load_frozen_pipeline(cfg)
        super().__init__(cfg, pipe)
        self.teacher = LLMFeatures(cfg.llm_model, cfg.llm_layer, cfg.llm_cache_dir or self.output_dir / "llm-cache",
                                   device=pipe.device)
        cache = cached_features(pipe, cfg, self.teacher)
        classes = {}
        if cfg.attribute_columns:
            cache["attributes"], classes = attribute_labels(cfg, cache)
        if cfg.gate_columns:
            keep = torch.tensor([c in cfg.gate_columns for c in (cfg.simple_column, *cfg.extra_simple_columns)])
            cache["adapt"] = ~keep[row_columns(cfg, cache)]
        set_seed(cfg.seed)  # weights initialised below are a function of the seed (imports may reseed torch at random)
        self.model = SURAdapter(
            cache["simple"].shape[-1], self.teacher.dim, num_layers=cfg.num_layers, num_heads=cfg.num_heads,
            dropout=cfg.adapter_dropout, beta=cfg.beta, llm_at_inference=cfg.llm_at_inference,
            pooled_dim=cache["pooled"].shape[-1] if "pooled" in cache else None, llm_tokens=cfg.llm_tokens,
            max_length=cache["simple"].shape[1], read_prompt_embeds=cfg.read_prompt_embeds,
            attribute_classes=[len(v) for v in classes.values()] or None, slots=cfg.llm_slots,
            pools_only=cfg.llm_pools_only, class_memory=cfg.class_memory, gate=bool(cfg.gate_columns))
        self._batch, self._loss = _batch_fn(cfg, cache, pipe.vae.config.scaling_factor), _loss_fn(cfg, pipe)
        self.evaluator = HeldOutEvaluator.from_config(pipe, cfg)
        self.refiner = _rewriting_lifts(pipe, cfg.refiner) if cfg.refiner else []  # the stack's order: rewrite, then adapt

    def batch(self, index):
        return self._batch(index)

    def loss(self, model, batch):
        return self._loss(model, batch)

    def evaluate(self, model, step):
        """Step 3. The adapter is measured whole: narrative prompts are the ones it exists to change, and a gate is the
        lift's setting (a learnt gate head or the folder's lift.json), measured apart (`promptlift eval --system`)."""
        adapter = SURAdapterLift("sur-adapter", None, adapter=model, teacher=self.teacher, reads="rewrite", gate="none")
        return self.evaluator([*self.refiner, adapter])

    def save(self, model, folder, step=None):
        save_adapter(model, self.cfg, folder)


def train(cfg: SURAdapterConfig) -> Path:
    """Train the adapter on `train_data_dir`; returns the output folder (adapter in final/ and best/)."""
    return SURAdapterTrainer(cfg).train()
