"""Every trainer at real size: SD 1.5, SD 2.1 and SDXL built from their published configs with random weights
(benchmarks/configs/<arch>, no download), one optimisation step of each method's real trainer, and a 25-step
generation with the lifted stack made of what those steps wrote.

    .venv/bin/python benchmarks/real_size.py --arch sd15 --resolution 128             # measure (appends results)
    .venv/bin/python benchmarks/real_size.py --arch sd15 sd21 sdxl --resolution 128 192 256 320
    .venv/bin/python benchmarks/real_size.py --table --fit 128 192 256 --check 320     # the memory model and table

Each (arch, method, resolution) runs in a fresh child process: the method's `train` with `max_train_steps 1` (the
held-out check cut to one prompt and one denoising step, so it costs nothing), with the training loop's optimizer
step instrumented: the bytes held when the step starts (every model the trainer loaded, its caches), the step's
peak above that (CPU: malloc's in-use bytes, sampled; CUDA: `max_memory_allocated`), the trainable weights'
gradients and the optimizer state (counted from the tensors), and the step's time. Activations are the step's peak
less the gradients and the optimizer state it allocated. Results go to `--results` (JSON lines), one per run.

`--table` fits, per (arch, method), activation bytes = a + b x latent pixels from the `--fit` resolutions, reports
its error on the `--check` resolution, and projects peak memory at the paper's resolution and batch: weights by
the parameter counts of what the trainer holds (frozen ones in the training dtype, trainable ones in fp32 as mixed
precision keeps them), gradients in fp32, AdamW's two fp32 moments (8 bytes a parameter) or 8-bit AdamW's (2 bytes),
and activations scaled by batch (and halved in fp16/bf16).
"""

import argparse
import json
import multiprocessing as mp
import os
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from memory import PeakSampler  # noqa: E402  (benchmarks/memory.py)

CONFIGS = Path(__file__).parent / "configs"
ARCHS = ("sd15", "sd21", "sdxl")
METHODS = ("quality-tuning", "quality-tuning-lora", "sur-adapter", "textcraftor-k1", "textcraftor-k5", "refiner", "generate")
GiB = 2**30


def build_pipeline(arch: str, folder: Path) -> Path:
    """The random full-size pipeline of `arch` saved in `folder` (fp16 safetensors; kept for later runs)."""
    if (folder / "model_index.json").is_file():
        return folder
    import torch
    from diffusers import (AutoencoderKL, DDIMScheduler, EulerDiscreteScheduler, PNDMScheduler, StableDiffusionPipeline,
                           StableDiffusionXLPipeline, UNet2DConditionModel)
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    from promptlift.tiny import byte_level_clip_tokenizer
    from promptlift.utils import atomic_dir

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
        from promptlift.world.config import DatasetConfig
        from promptlift.world.dataset import build_dataset

        build_dataset(DatasetConfig(num_scenes=16, seed=0, size=resolution, output_dir=folder, num_workers=1))
    return folder


def method_config(method: str, model: Path, data: Path, out: Path, resolution: int, batch: int):
    """The config of `method`'s trainer for one step at `resolution` on `data`, as `promptlift train` builds it."""
    from promptlift.methods import METHODS as REGISTRY

    common = dict(pretrained_model_name_or_path=str(model), output_dir=out, max_train_steps=1, train_batch_size=batch,
                  num_eval_prompts=1, eval_inference_steps=1, lr_warmup_steps=0, checkpointing_steps=1)
    name, extra = method, {}
    if method.startswith("quality-tuning"):
        name = "quality-tuning"
        extra = dict(train_data_dir=data, caption_column=["complex"], use_lora=method.endswith("lora"),
                     gradient_accumulation_steps=1)
    elif method == "sur-adapter":  # the bundle's recipe (configs/world/sur-adapter.yaml)
        extra = dict(train_data_dir=data, extra_simple_columns=["literal"], llm_at_inference=True, llm_tokens=True,
                     read_prompt_embeds=False, beta=1.0, complex_target="tokens", complex_weight=1.0,
                     diffusion_batch_size=batch)
    elif method.startswith("textcraftor"):
        name = "textcraftor"
        extra = dict(prompts=str(data), prompt_column="literal", reward=["world-aesthetic-reward:1", "world-clip:0.05"],
                     num_inference_steps=10, grad_steps=int(method[-1]), gradient_checkpointing=True,
                     resolution=resolution, guidance_scale=5.0)
    elif method == "refiner":
        extra = dict(train_data=str(data), coarse_column="literal", fine_column="complex", diffusion_batch_size=batch)
    return name, REGISTRY[name].config(**common, **extra)


def _tensor_bytes(obj) -> int:
    import torch

    if torch.is_tensor(obj):
        return obj.numel() * obj.element_size()
    if isinstance(obj, dict):
        return sum(_tensor_bytes(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(_tensor_bytes(v) for v in obj)
    return 0


def _instrument(record: dict) -> None:
    """Wrap the training loop's optimizer step: what it holds, its peak, its gradients and optimizer state, time."""
    import torch

    from promptlift.training import loop
    from memory import _allocated

    step = loop._optimizer_step

    def measured(accelerator, cfg, model, optimizer, scheduler, params, *args, **kwargs):
        cuda = torch.cuda.is_available()
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        held = torch.cuda.memory_allocated() if cuda else _allocated()
        t0 = time.perf_counter()
        with PeakSampler() as sampler:
            result = step(accelerator, cfg, model, optimizer, scheduler, params, *args, **kwargs)
        if cuda:
            torch.cuda.synchronize()
        trainable = sum(p.numel() for p in params)
        record.update(seconds=time.perf_counter() - t0, held=held,
                      peak=(torch.cuda.max_memory_allocated() - held) if cuda else sampler.extra[0],
                      trainable=trainable, grads=sum(p.numel() * p.element_size() for p in params),
                      optimizer=_tensor_bytes(list(optimizer.state_dict()["state"].values())))
        return result

    loop._optimizer_step = measured


def _child(arch: str, method: str, resolution: int, batch: int, threads: int, root: str, queue) -> None:
    import torch

    torch.set_num_threads(threads)
    root = Path(root)
    record = dict(arch=arch, method=method, resolution=resolution, batch=batch, threads=threads,
                  device="cuda" if torch.cuda.is_available() else "cpu")
    try:
        model = root / arch / "model"
        runs = root / arch / f"runs-{resolution}"
        if method == "generate":  # the lifted stack, made of what the trainers' steps wrote
            from promptlift.generation import GenerateConfig, generate

            lifts = [f"quality-tuning={runs / 'quality-tuning-lora' / 'final'}", f"sur-adapter={runs / 'sur-adapter' / 'final'}",
                     f"textcraftor={runs / 'textcraftor-k5' / 'final'}", f"refiner={runs / 'refiner' / 'final'}"]
            cfg = GenerateConfig(prompt=["a couple of boats as the sun goes down"] * batch, model=str(model), lifted=True,
                                 lift=lifts, num_inference_steps=25, height=resolution, width=resolution,
                                 output_dir=runs / "generate", overwrite=True)
            from memory import _allocated

            held = _allocated()
            t0 = time.perf_counter()
            with PeakSampler() as sampler:
                generate(cfg)
            record.update(seconds=time.perf_counter() - t0, held=held, peak=sampler.extra[0], trainable=0, grads=0,
                          optimizer=0)
        else:
            data = build_data(resolution, root)
            name, cfg = method_config(method, model, data, runs / method, resolution, batch)
            from promptlift.methods import METHODS as REGISTRY

            _instrument(record)
            REGISTRY[name].train(cfg)
        record["ok"] = True
    except Exception as e:  # noqa: BLE001  a failure at full size is a result to report
        import traceback

        traceback.print_exc()
        record.update(ok=False, error=f"{type(e).__name__}: {e}"[:500])
    queue.put(record)


def measure(args) -> None:
    root = Path(args.root)
    results = Path(args.results)
    results.parent.mkdir(parents=True, exist_ok=True)
    ctx = mp.get_context("spawn")
    for arch in args.arch:
        build_pipeline(arch, root / arch / "model")
        for resolution in args.resolution:
            for method in args.methods:
                queue = ctx.Queue()
                proc = ctx.Process(target=_child, args=(arch, method, resolution, args.batch_size, args.num_threads,
                                                        str(root), queue))
                proc.start()
                record = queue.get()
                proc.join()
                with results.open("a") as f:
                    f.write(json.dumps(record) + "\n")
                cells = (f"held {record['held'] / GiB:6.2f} GiB  step peak +{record['peak'] / GiB:6.2f} GiB  "
                         f"grads {record['grads'] / GiB:5.2f}  optimizer {record['optimizer'] / GiB:5.2f}  "
                         f"{record['seconds']:7.1f} s") if record["ok"] else f"FAILED {record['error']}"
                print(f"{arch:>5} {method:>20} {resolution:>5} px  {cells}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", nargs="+", default=["sd15"], choices=ARCHS)
    parser.add_argument("--resolution", nargs="+", type=int, default=[128])
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--batch_size", type=int, default=1)
    parser.add_argument("--num_threads", type=int, default=2)
    parser.add_argument("--root", default="runs/real-size", help="Random pipelines, data and runs.")
    parser.add_argument("--results", default="runs/real-size/results.jsonl")
    args = parser.parse_args()
    measure(args)


if __name__ == "__main__":
    main()
