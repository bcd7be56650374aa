"""`promptlift memory calibrate`: every trainer at real size on this machine, the points the memory model is fitted on.

SD 1.5, SD 2.1 and SDXL are built from their published configs with random weights (memory/architectures/<arch>, no
download); each (arch, method, resolution) runs one optimisation step of the method's real trainer in a fresh child
process, and the lifted stack made of what those steps wrote generates 25 steps.

    promptlift memory calibrate --arch sd15 --resolution 128                # measure (appends to --results)
    promptlift memory calibrate --arch sd15 --arch sd21 --arch sdxl --resolution 64 --resolution 128
    promptlift memory calibrate --table --fit 256 --fit 384 --check 512     # fit the memory model, print the table

The trainer's `max_train_steps` is 1 (the held-out check cut to one prompt and one denoising step, so it costs
nothing), with the training loop's optimizer step instrumented: the bytes held when the step starts (every model the
trainer loaded, its caches), the step's peak above that (CPU: malloc's in-use bytes, sampled; CUDA:
`max_memory_allocated`), the trainable weights' gradients and the optimizer state (counted from the tensors), and the
step's time. Activations are the step's peak less the gradients and the optimizer state it allocated. Results go to
`--results` (JSON lines), one per run; `promptlift memory` reads the package's measured.jsonl, which this command wrote.

`--table` fits, per (arch, method), activation bytes = a + b x latent pixels from the `--fit` resolutions (at 64-192
px a floor of fixed-size work sets them, so fit above it: 256 and 384 px), reports its error on the `--check`
resolutions, and projects peak memory at the paper's resolution and batch: weights by the parameter counts of what the
trainer holds (frozen ones in the training dtype, trainable ones in fp32 as mixed precision keeps them), gradients in
fp32, AdamW's two fp32 moments (8 bytes a parameter) or 8-bit AdamW's (2 bytes), and activations scaled by batch (and
halved in fp16/bf16).
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from ..memory.model import (ARCHITECTURES as CONFIGS, GPUS, MEASURED, PAPER_BATCH, PAPER_RESOLUTION, GiB, latent_pixels,
                            load_models, max_batch, phases, project, read_measured, unet_parameters)
from ..memory.sampler import PeakSampler, allocated

__all__ = ["ARCHS", "METHODS", "CalibrateConfig", "build_data", "build_pipeline", "calibrate", "method_config"]

ARCHS = ("sd15", "sd21", "sdxl")
METHODS = ("quality-tuning", "quality-tuning-lora", "sur-adapter", "textcraftor-k1", "textcraftor-k5", "refiner", "generate")


def build_pipeline(arch: str, folder: Path) -> Path:
    """The random full-size pipeline of `arch` saved in `folder` (fp16 safetensors; kept for later runs)."""
    if (folder / "model_index.json").is_file():
        return folder
    import torch
    from diffusers import (AutoencoderKL, DDIMScheduler, EulerDiscreteScheduler, PNDMScheduler, StableDiffusionPipeline,
                           StableDiffusionXLPipeline, UNet2DConditionModel)
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    from ..files import atomic_dir
    from ..tiny import byte_level_clip_tokenizer

    def read(name):
        return json.loads((CONFIGS / arch / f"{name}.json").read_text())

    torch.manual_seed(0)
    schedulers = {c.__name__: c for c in (DDIMScheduler, EulerDiscreteScheduler, PNDMScheduler)}
    scheduler = read("scheduler")
    parts = dict(unet=UNet2DConditionModel.from_config(read("unet")), vae=AutoencoderKL.from_config(read("vae")),
                 text_encoder=CLIPTextModel(CLIPTextConfig(**read("text_encoder"))), tokenizer=byte_level_clip_tokenizer(),
                 scheduler=schedulers[scheduler.pop("_class_name")].from_config(scheduler))
    if arch == "sdxl":
        parts.update(text_encoder_2=CLIPTextModelWithProjection(CLIPTextConfig(**read("text_encoder_2"))),
                     tokenizer_2=byte_level_clip_tokenizer())
        pipe = StableDiffusionXLPipeline(**parts)
    else:
        pipe = StableDiffusionPipeline(**parts, safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    with atomic_dir(folder) as tmp:
        pipe.to(torch.float16).save_pretrained(tmp)
    return folder


def build_data(resolution: int, root: Path) -> Path:
    """A few world scenes rendered at `resolution` px (every method's columns: narrative, literal, complex)."""
    folder = root / f"data-{resolution}"
    if not (folder / "metadata.jsonl").is_file():
        from ..world.config import DatasetConfig
        from ..world.dataset import build_dataset

        build_dataset(DatasetConfig(num_scenes=4, seed=0, size=resolution, output_dir=folder, num_workers=1))
    return folder


def method_config(method: str, model: Path, data: Path, out: Path, resolution: int, batch: int, options: dict):
    """The config of `method`'s trainer for one step at `resolution` on `data`, as `promptlift train` builds it;
    `options`: mixed_precision, optimizer, gradient_checkpointing."""
    from ..methods import METHODS as REGISTRY

    common = dict(pretrained_model_name_or_path=str(model), output_dir=out, max_train_steps=1, train_batch_size=batch,
                  num_eval_prompts=1, eval_inference_steps=1, eval_resolution=resolution, lr_warmup_steps=0,
                  checkpointing_steps=1, eval_prompts="world-literal", eval_judge="world-aesthetic",  # asked by name:
                  **options)  # a random model is not the embedded one, whose judges are the default
    name, extra = method, {}
    if method.startswith("quality-tuning"):
        name = "quality-tuning"
        extra = dict(train_data_dir=data, caption_column=["complex"], use_lora=method.endswith("lora"),
                     gradient_accumulation_steps=1)
    elif method == "sur-adapter":  # the bundle's recipe (configs/world/sur-adapter.yaml)
        extra = dict(train_data_dir=data, simple_column="narrative", extra_simple_columns=["literal"],
                     llm_at_inference=True, llm_tokens=True,
                     read_prompt_embeds=False, beta=1.0, complex_target="tokens", complex_weight=1.0,
                     diffusion_batch_size=batch)
    elif method.startswith("textcraftor"):
        name = "textcraftor"
        extra = dict(prompts=str(data), prompt_column="literal", rewards=["world-aesthetic-reward:1", "world-clip:0.05"],
                     num_inference_steps=10, grad_steps=int(method[-1]), resolution=resolution, guidance_scale=5.0,
                     switch_step=0)  # the one-step held-out check has no earlier steps to hand over
        extra["gradient_checkpointing"] = True  # TextCraftor's own: each sampling step and the decode recomputed
    elif method == "refiner":
        extra = dict(train_data=str(data), coarse_column="literal", fine_column="complex", diffusion_batch_size=batch)
    return name, REGISTRY[name].config(**{**common, **extra})


def _tensor_bytes(obj) -> int:
    import torch

    if torch.is_tensor(obj):
        return obj.numel() * obj.element_size()
    if isinstance(obj, dict):
        return sum(_tensor_bytes(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(_tensor_bytes(v) for v in obj)
    return 0


def _frozen_bytes(trained) -> int:
    """Bytes of every weight and buffer of the live modules that does not train (each tensor once)."""
    import gc

    import torch

    trained = {id(p) for p in trained}
    seen, total = set(), 0
    for obj in gc.get_objects():
        if isinstance(obj, torch.nn.Module):
            for t in (*obj.parameters(recurse=False), *obj.buffers(recurse=False)):
                if id(t) not in trained and t.device.type != "meta" and t.data_ptr() not in seen:
                    seen.add(t.data_ptr())
                    total += t.numel() * t.element_size()
    return total


def _instrument(record: dict) -> None:
    """Wrap the training loop's optimizer step: what it holds, the peak of each phase (forward, backward, optimizer
    step), its gradients and optimizer state, its time."""
    import torch

    from ..training import loop

    step = loop._optimizer_step
    cuda = torch.cuda.is_available()

    def measured(accelerator, cfg, model, optimizer, scheduler, params, *args, **kwargs):
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        held = torch.cuda.memoryallocated() if cuda else allocated()
        t0 = time.perf_counter()
        phases = {}

        def phase_ends(name):
            """The peak above `held` since the last phase ended; the next phase's peak starts from here."""
            if cuda:
                torch.cuda.synchronize()
                phases[name] = torch.cuda.max_memoryallocated() - held
                torch.cuda.reset_peak_memory_stats()
            else:
                phases[name] = sampler.extra[0]
                sampler.reset()

        backward = accelerator.backward

        def measured_backward(loss, **kw):
            phase_ends("forward")  # the loss: activations kept for backward and the forward's temporaries
            backward(loss, **kw)

        accelerator.backward = measured_backward
        inner = getattr(optimizer, "optimizer", optimizer)  # accelerate's wrapper holds the torch optimizer
        hook = inner.register_step_pre_hook(lambda *_: phase_ends("backward"))  # gradients + what backward holds
        with PeakSampler() as sampler:
            result = step(accelerator, cfg, model, optimizer, scheduler, params, *args, **kwargs)
            phase_ends("optimizer")  # gradients + the optimizer's state and temporaries
        hook.remove()
        accelerator.backward = backward
        record.update(seconds=time.perf_counter() - t0, held=held, peak=max(phases.values()),
                      forward_peak=phases["forward"], backward_peak=phases["backward"],
                      optimizer_peak=phases["optimizer"], trainable=sum(p.numel() for p in params),
                      grads=sum(p.numel() * p.element_size() for p in params),
                      frozen=_frozen_bytes(params), state=_tensor_bytes(list(optimizer.state_dict()["state"].values())))
        return result

    loop._optimizer_step = measured


def _child(arch: str, method: str, resolution: int, batch: int, threads: int, root: str, options: dict, queue) -> None:
    import torch

    torch.set_num_threads(threads)
    root = Path(root)
    record = dict(arch=arch, method=method, resolution=resolution, batch=batch, threads=threads, **options,
                  device="cuda" if torch.cuda.is_available() else "cpu")
    try:
        model = root / arch / "model"
        runs = root / arch / f"runs-{resolution}"
        if method == "generate":  # the lifted stack, made of what the trainers' steps wrote
            from ..generation import GenerateConfig, generate

            lifts = [f"quality-tuning={runs / 'quality-tuning-lora' / 'best'}", f"sur-adapter={runs / 'sur-adapter' / 'final'}",
                     f"textcraftor={runs / 'textcraftor-k5' / 'final'}", f"refiner={runs / 'refiner' / 'final'}"]
            cfg = GenerateConfig(prompt=["a couple of boats as the sun goes down"] * batch, model=str(model), lifted=True,
                                 lift=lifts, num_inference_steps=25, height=resolution, width=resolution,
                                 output_dir=runs / "generate", batch_size=batch,
                                 dtype={"bf16": "bfloat16", "fp16": "float16"}.get(options["mixed_precision"], "float32"))
            held = allocated()
            t0 = time.perf_counter()
            with PeakSampler() as sampler:
                generate(cfg)
            # the whole call: loading the pipeline and the lifts, rewriting, 25 steps, decoding, writing
            record.update(seconds=time.perf_counter() - t0, held=held, peak=sampler.extra[0], trainable=0, grads=0,
                          state=0)
        else:
            data = build_data(resolution, root)
            name, cfg = method_config(method, model, data, runs / method, resolution, batch, options)
            from ..methods import METHODS as REGISTRY

            _instrument(record)
            REGISTRY[name].train(cfg)
            # keep what the lifted generation reads, not a full UNet's copies (GBs each) or the resumable checkpoints
            shutil.rmtree(runs / method if method == "quality-tuning" else runs / method / "checkpoints", ignore_errors=True)
        record["ok"] = True
    except Exception as e:  # noqa: BLE001  a failure at full size is a result to report
        import traceback

        traceback.print_exc()
        record.update(ok=False, error=f"{type(e).__name__}: {e}"[:500])
    queue.put(record)


def _beyond_memory(arch: str, method: str, model: Path, mixed_precision: str) -> str | None:
    """Why full-UNet quality-tuning cannot run in this machine's RAM, if it cannot (SDXL's: its weights, gradients and
    8-bit AdamW state alone exceed 24 GB); `--table` then derives it from the LoRA run."""
    if method != "quality-tuning":
        return None
    weights = 2 * sum(f.stat().st_size for f in model.rglob("*.safetensors"))  # saved in fp16: fp32 bytes
    if mixed_precision != "no":
        weights //= 2
    n = unet_parameters(arch)
    need = weights + 4 * n * (mixed_precision != "no") + 4 * n + 2 * n  # the UNet trains in fp32; gradients, state
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    if need < 0.9 * ram:
        return None
    return (f"not run: needs at least {need / GiB:.0f} GiB of RAM, this machine has {ram / GiB:.0f} GiB "
            "(the table derives it from the LoRA run)")


def _result(proc, queue, record: dict) -> dict:
    """The child's record; if it died first (the kernel's out-of-memory killer sends SIGKILL), a failed one."""
    import queue as queues

    while True:
        try:
            result = queue.get(timeout=5)
            proc.join()
            return result
        except queues.Empty:
            if not proc.is_alive():
                why = "killed (out of memory?)" if proc.exitcode == -9 else f"exited with {proc.exitcode}"
                return {**record, "held": 0, "peak": 0, "grads": 0, "state": 0, "seconds": 0, "ok": False,
                        "error": f"the measuring process was {why}"}


def measure(args: CalibrateConfig) -> None:
    root = Path(args.root)
    results = Path(args.results)
    results.parent.mkdir(parents=True, exist_ok=True)
    ctx = mp.get_context("spawn")
    t0 = time.perf_counter()
    for arch in args.arch:
        t_arch = time.perf_counter()
        model = root / arch / "model"
        if not (model / "model_index.json").is_file():  # in a child: the parent would keep SDXL's 14 GB from its runs
            builder = ctx.Process(target=build_pipeline, args=(arch, model))
            builder.start()
            builder.join()
            if builder.exitcode != 0:
                raise SystemExit(f"building the random {arch} pipeline failed (exit code {builder.exitcode}).")
        for resolution in args.resolution:
            for method in args.methods:
                queue = ctx.Queue()
                options = dict(mixed_precision=args.mixed_precision, optimizer=args.optimizer,
                               gradient_checkpointing=args.gradient_checkpointing)
                record = dict(arch=arch, method=method, resolution=resolution, batch=args.batch_size, **options)
                too_big = _beyond_memory(arch, method, model, args.mixed_precision)
                if too_big:
                    record.update(held=0, peak=0, grads=0, state=0, seconds=0, ok=False, error=too_big)
                else:
                    proc = ctx.Process(target=_child, args=(arch, method, resolution, args.batch_size,
                                                            args.num_threads, str(root), options, queue))
                    proc.start()
                    record = _result(proc, queue, record)
                with results.open("a") as f:
                    f.write(json.dumps(record) + "\n")
                cells = (f"held {record['held'] / GiB:6.2f} GiB  step peak +{record['peak'] / GiB:6.2f} GiB  "
                         f"grads {record['grads'] / GiB:5.2f}  optimizer state {record['state'] / GiB:5.2f}  "
                         f"{record['seconds']:7.1f} s") if record["ok"] else f"FAILED {record['error']}"
                print(f"{arch:>5} {method:>20} {resolution:>5} px  {cells}", flush=True)
        print(f"{arch}: {len(args.resolution) * len(args.methods)} runs in {(time.perf_counter() - t_arch) / 60:.1f} min", flush=True)
    print(f"{len(args.arch) * len(args.resolution) * len(args.methods)} runs in {(time.perf_counter() - t0) / 60:.1f} min")

def check_model(models: dict, check: int, fit: list[int]) -> None:
    """The model's error at a measured resolution it was not fitted on: of the total peak and of the activations."""
    print(f"\nmodel fitted on {fit} px, checked on {check} px, as measured (batch 1, the measured precision "
          "and optimizer); the error of the total peak (held + step) and of the activations that set it:")
    print(f"{'arch':>5} {'method':>20} {'measured GiB':>13} {'projected GiB':>14} {'error':>7} {'activations':>12} "
          f"{'error':>7}")
    for (arch, method), m in models.items():
        row = m["rows"].get(check)
        if row is None:
            continue
        half = row["mixed_precision"] != "no"
        projected = project(m, check, row["batch"], optimizer=row["optimizer"], half=half)
        if method == "generate":
            measured, act_measured = row["peak"], row["peak"] - m["frozen"]
            act_projected = projected - m["frozen"]
        else:
            measured = row["held"] + row["peak"]
            projected += row["held"] - m["held"]  # the cached data differs between resolutions: the check's own
            forward, tail = phases(row)
            phase = "forward" if forward >= tail else "backward"
            act_measured = forward if phase == "forward" else tail
            a, b = m[phase]
            act_projected = a + b * latent_pixels(check)
        print(f"{arch:>5} {method:>20} {measured / GiB:>13.2f} {projected / GiB:>14.2f} "
              f"{(projected - measured) / measured:>+7.1%} {act_measured / GiB:>10.3f} G "
              f"{(act_projected - act_measured) / max(act_measured, 1):>+7.1%}")


def table(args: CalibrateConfig) -> None:
    records = read_measured(Path(args.results))
    for r in records:
        if not r["ok"]:
            print(f"failed: {r['arch']} {r['method']} {r['resolution']} px: {r['error']}")
    models = load_models(records, tuple(args.fit))
    for check in args.check:
        check_model(models, check, args.fit)
    memory, batches = [], []  # two tables, each narrow enough to read on a laptop screen
    for (arch, method), m in models.items():
        if method == "generate":  # the whole call's peak is the loading's at these sizes: measured, not projected
            continue
        res, batch = PAPER_RESOLUTION[arch], PAPER_BATCH[method]
        memory.append([arch, method, res, batch, f"{project(m, res, batch) / GiB:.1f} GiB", f"{project(m, res, 1) / GiB:.1f} GiB",
                       f"{project(m, res, 1, optimizer='adamw') / GiB:.1f} GiB",
                       f"{project(m, res, 1, optimizer='adamw', half=False) / GiB:.1f} GiB"])
        seconds = ", ".join(f"{k} px {v['seconds']:.0f}" for k, v in sorted(m["rows"].items())) or \
            ("not measured here: derived from the LoRA run" if method == "quality-tuning" else "derived from K = 1")
        batches.append([arch, method, res, *(max_batch(m, res, g) for g in GPUS), seconds])
    print("\nProjected peak memory at the paper's resolution:")
    _markdown_table(["arch", "method", "resolution", "paper batch", "at paper batch, bf16 + 8-bit AdamW",
                     "batch 1: bf16 + 8-bit AdamW", "bf16 + AdamW", "fp32 + AdamW"], memory)
    print("\nThe largest batch that fits (bf16 + 8-bit AdamW), and a step's seconds as measured on this CPU:")
    _markdown_table(["arch", "method", "resolution", *(f"max batch {g} GB" for g in GPUS), "CPU step s (measured)"],
                    batches)
    print("\n25-step lifted generation, the whole call's peak (loading the pipeline and the lifts included), measured:")
    for r in records:
        if r["method"] == "generate":
            cell = f"{r['peak'] / GiB:.2f} GiB, {r['seconds']:.0f} s" if r["ok"] else f"failed: {r['error']}"
            print(f"  {r['arch']} {r['resolution']} px {r['mixed_precision']}: {cell}")


def _markdown_table(header: list[str], rows: list[list]) -> None:
    print("\n| " + " | ".join(header) + " |\n" + "|---" * len(header) + "|")
    for row in rows:
        print("| " + " | ".join(map(str, row)) + " |")


@dataclass
class CalibrateConfig:
    """Measure every trainer's step at real size on this machine (the memory model's points), or fit and tabulate them."""

    arch: list[str] = field(default_factory=lambda: ["sd15"], metadata={"help": "Architectures: sd15, sd21, sdxl."})
    resolution: list[int] = field(default_factory=lambda: [128], metadata={"help": "Resolutions to measure, in px."})
    methods: list[str] = field(default_factory=lambda: list(METHODS), metadata={
        "help": f"What to measure: {', '.join(METHODS)}."})
    batch_size: int = field(default=1, metadata={"help": "Batch of each measured step.", "min": 1})
    num_threads: int = field(default=2, metadata={"help": "CPU threads of each measuring process.", "min": 1})
    mixed_precision: Literal["no", "fp16", "bf16"] = field(default="bf16", metadata={
        "help": "Training precision (frozen models held in it); fp16 needs a GPU."})
    optimizer: Literal["adamw", "adamw_8bit"] = field(default="adamw_8bit", metadata={
        "help": "Measured with 8-bit AdamW (a full SD 1.5 UNet's fp32 AdamW state alone is 6.4 GiB); the table projects "
                "fp32 AdamW from the parameter count."})
    gradient_checkpointing: bool = field(default=True, metadata={"help": "Recompute the UNet's activations in backward."})
    root: Path = field(default=Path("runs/real-size"), metadata={"help": "Random pipelines, data and runs."})
    results: Path = field(default=MEASURED, metadata={
        "help": "JSON lines, appended to; `promptlift memory` and docs/reports/real-size.md read the package's."})
    table: bool = field(default=False, metadata={"help": "Fit the memory model on --results and print the table."})
    fit: list[int] = field(default_factory=lambda: [256, 384], metadata={
        "help": "Resolutions the model is fitted on (above the fixed-size floor of 64-192 px)."})
    check: list[int] = field(default_factory=lambda: [512], metadata={"help": "Held-out measured resolutions."})

    def __post_init__(self):
        for name, allowed in (("arch", ARCHS), ("methods", METHODS)):
            unknown = sorted(set(getattr(self, name)) - set(allowed))
            if unknown:
                raise ValueError(f"`{name}` {unknown} unknown; choose from {', '.join(allowed)}.")


def calibrate(cfg: CalibrateConfig) -> None:
    """Measure (appending to `cfg.results`), or with `cfg.table` fit the memory model and print its table."""
    table(cfg) if cfg.table else measure(cfg)
