"""Inference overhead of each lift and of the lifted stack vs the base model: measured time ratios in one process,
counted FLOPs, and the FLOPs projected for Stable Diffusion 1.5 at 512 px.

    .venv/bin/python benchmarks/lift_overhead.py [--lift sur-adapter] [--lift sur-adapter=FOLDER ...] [--no-stack]
        [--steps 25] [--batch_sizes 1 16] [--repeats 5] [--num_threads 2] [--no-project] [--parts]

Systems: the base model, each lift alone (default: every lift of the stack, with the bundle's weights) and the whole
stack (`--lifted`). For each batch size one generation per system (everything a generation does counts: the
refiner's rewrite, the text encoder, the lifts' own models such as the SUR-adapter's LLM teacher, the denoising
steps, the VAE decode) is timed interleaved, `repeats` times after a warm-up, on the same world prompts and seeds;
it prints the median seconds and lifted / base. The FLOPs of one image's generation are counted for every system
(torch's FlopCounterMode), and then projected to SD 1.5 at 512 px: the base generation (25 steps x the guided UNet
pair, the VAE decode, the CLIP ViT-L text encoder) and each lift's own work at that size, built from the configs
in src/promptlift/memory/architectures/sd15 on the meta device (no weights): quality-tuning = nothing (its LoRA is fused into the UNet's
weights when the lift loads); TextCraftor = one more CLIP-L encode (the base model's embedding
its change is measured against); SUR-adapter = its teacher (all-MiniLM-L6-v2) and the adapter at width 768;
refiner = an LM refiner's rewrite as counted (SmolLM2 is the same LM on any diffusion model), or for the T5 refiner
a CLIP-L encode of the prompt, its domain adapter at width 768 and its decoder (the class defaults, d_model 256,
writing the tokenizer's 49 408 tokens) over the prompt and 20 new tokens. Default model: the embedded one.
The times, ratios and FLOPs go to `--results` (default benchmarks/results/lift_overhead.json, which the speed report
reads) with the run's date, commit, command and machine.
"""

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from promptlift.data.prompt_sets import load_prompt_set  # noqa: E402
from promptlift.generation import SamplingConfig, generate_images, load_sampling  # noqa: E402
from promptlift.pipeline.stack import LIFTED_STACK  # noqa: E402
from promptlift.pipeline import encode_prompts, rewrite_prompts  # noqa: E402
from record import add_results_option, ratio, write_results  # noqa: E402 (benchmarks/record.py)

SD15 = Path(__file__).resolve().parents[1] / "src" / "promptlift" / "memory" / "architectures" / "sd15"


def run(system, prompts, seeds):
    cfg, pipe, lifts = system
    return generate_images(pipe, cfg, rewrite_prompts(prompts, lifts), seeds, lifts, user_prompts=prompts)


def stack_parts(system, prompts, repeats: int) -> None:
    """Median milliseconds of the stack's work before denoising, one prompt: the rewrite, and the encoding with and
    without the lifts' edits (the SUR-adapter's teacher and adapter, TextCraftor's base encode)."""
    _, pipe, lifts = system
    rewritten = rewrite_prompts(prompts, lifts)
    parts = {"refiner rewrite": lambda: rewrite_prompts(prompts, lifts),
             "encode with the lifts' edits": lambda: encode_prompts(pipe, rewritten, lifts=lifts, user_prompts=prompts),
             "encode, the pipeline's encoder alone": lambda: encode_prompts(pipe, rewritten)}
    print(f"\nthe stack's parts at batch {len(prompts)}, median of {repeats} after a warm-up")
    with torch.no_grad():
        for name, fn in parts.items():
            fn()
            times = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                fn()
                times.append(time.perf_counter() - t0)
            print(f"{name:<40} {1000 * statistics.median(times):8.1f} ms")


def flops(fn) -> float:
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        fn()
    return float(counter.get_total_flops())


def sd15_flops(prompt: str, steps: int, lm_rewrite: float | None = None) -> dict[str, float]:
    """{part: FLOPs} of one 512 px SD 1.5 image (base) and of each stack lift's own work at that size; `lm_rewrite`:
    the counted FLOPs of an LM refiner's rewrite, which are the same on any diffusion model."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from promptlift.methods.refiner.model import PromptRefiner
    from promptlift.methods.sur_adapter.llm import LLMFeatures
    from promptlift.methods.sur_adapter.model import SURAdapter
    from promptlift.pipeline import default_model_path

    meta = torch.device("meta")
    config = {n: json.loads((SD15 / f"{n}.json").read_text()) for n in ("unet", "vae", "text_encoder")}
    with meta:
        unet = UNet2DConditionModel.from_config(config["unet"])
        vae = AutoencoderKL.from_config(config["vae"])
        text = CLIPTextModel(CLIPTextConfig(**config["text_encoder"]))
        sur = json.loads((default_model_path().parent / "sur-adapter" / "config.json").read_text())
        adapter = SURAdapter(**{**sur, "dim": 768, "num_heads": 12}).eval().requires_grad_(False)
    # on the CPU (its token lookup is built from values); it is small
    refiner = PromptRefiner(text_dim=768, vocab_size=config["text_encoder"]["vocab_size"], bos_token_id=0,
                            eos_token_id=2, pad_token_id=1, num_heads=4).eval().requires_grad_(False)
    latents, t = torch.zeros(2, 4, 64, 64, device=meta), torch.tensor([500, 500], device=meta)
    context = torch.zeros(2, 77, 768, device=meta)
    ids = torch.zeros(2, 77, dtype=torch.long, device=meta)
    with torch.no_grad():
        parts = {"unet step": flops(lambda: unet(latents, t, context)),
                 "vae decode": flops(lambda: vae.decode(latents[:1])),
                 "text encoder": flops(lambda: text(ids))}
        base = steps * parts["unet step"] + parts["vae decode"] + parts["text encoder"]
        teacher = LLMFeatures(json.loads((default_model_path().parent / "sur-adapter" / "teacher.json").read_text())["model"])
        states, mask = teacher.token_states([prompt])
        mem, new = torch.zeros(1, 77, 768), torch.zeros(1, 40, dtype=torch.long)  # new: prompt (~20 tokens) + 20 written
        extra = {
            "quality-tuning": 0.0,  # the LoRA is fused into the UNet's weights when the lift loads: no work per step
            "textcraftor": parts["text encoder"],
            "sur-adapter": flops(lambda: teacher.token_states([prompt]))
            + flops(lambda: adapter(context[:1], None, states.to(meta), mask.to(meta))),
            "refiner": lm_rewrite if lm_rewrite is not None
            else parts["text encoder"] / 2 + flops(lambda: refiner.token_losses(refiner.adapt(mem), None, new, 0)),
        }
    return {"base": base, **{name: base + value for name, value in extra.items()}, "stack": base + sum(extra.values())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None)
    parser.add_argument("--lift", action="append", default=None, help="NAME[=PATH], repeatable (default: each stack lift)")
    parser.add_argument("--stack", action=argparse.BooleanOptionalAction, default=True, help="also time the whole stack")
    parser.add_argument("--project", action=argparse.BooleanOptionalAction, default=True,
                        help="count FLOPs and project them to SD 1.5 at 512 px")
    parser.add_argument("--prompts", default="world-narrative-val")
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--batch_sizes", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--num_threads", type=int, default=2)
    parser.add_argument("--parts", action="store_true", help="also time the stack's rewrite and encoding apart")
    add_results_option(parser, "lift_overhead")
    args = parser.parse_args()
    torch.set_num_threads(args.num_threads)
    specs = {spec: [spec] for spec in args.lift or LIFTED_STACK}
    systems = {"base": []} | specs | ({"stack": None} if args.stack else {})
    loaded = {}
    for name, lift in systems.items():  # the stack as `--lifted` builds it: its lifts and their stack options
        cfg = SamplingConfig(model=args.model, lift=lift or [], lifted=lift is None, num_inference_steps=args.steps)
        pipe, lifts = load_sampling(cfg)
        pipe.set_progress_bar_config(disable=True)
        loaded[name] = (cfg, pipe, lifts)
    prompts = [r["prompt"] for r in load_prompt_set(args.prompts, num_prompts=max(args.batch_sizes))]
    print(f"{args.steps} steps, {torch.get_num_threads()} threads, median of {args.repeats} after a warm-up")
    record = {"steps": args.steps, "repeats": args.repeats, "prompts": args.prompts, "seconds": {}, "flops": {}}
    for size in args.batch_sizes:
        batch, seeds = prompts[:size], list(range(size))
        times = {name: [] for name in systems}
        for repeat in range(args.repeats + 1):
            for name, system in loaded.items():
                t0 = time.perf_counter()
                run(system, batch, seeds)
                if repeat:  # the first round warms up
                    times[name].append(time.perf_counter() - t0)
        base = statistics.median(times["base"])
        record["seconds"][size] = {}
        for name, t in times.items():
            median = statistics.median(t)
            record["seconds"][size][name] = {"median_s": median, "vs_base": median / base}
            print(f"batch {size:>3}  {name:<40} {median:8.3f} s  {median / base:6.3f}x base")
    if args.parts and "stack" in loaded:
        stack_parts(loaded["stack"], prompts[:1], 20)
    if args.project:
        counted = {name: flops(lambda s=system: run(s, prompts[:1], [0])) for name, system in loaded.items()}
        print(f"\nFLOPs of one image, {args.steps} steps: embedded model (counted) and SD 1.5 at 512 px (projected)")
        projected = sd15_flops(prompts[0], args.steps, lm_rewrite_flops(loaded, prompts[0])) if args.model is None else {}
        for name, value in counted.items():
            line = f"{name:<40} {value / 1e9:10.2f} GFLOP  {value / counted['base']:6.3f}x base"
            record["flops"][name] = {"counted": value, "vs_base": value / counted["base"]}
            if name in projected:
                line += f"   SD 1.5: {projected[name] / 1e9:10.1f} GFLOP  {projected[name] / projected['base']:6.4f}x base"
                record["flops"][name].update(sd15=projected[name], sd15_vs_base=projected[name] / projected["base"])
            print(line)
    ratios = [ratio(f"{name} / base, seconds, batch {size}", systems[name]["vs_base"])
              for size, systems in record["seconds"].items() for name in systems if name != "base"]
    write_results(args.results, "What each lift costs a generation", ratios, **record)


def lm_rewrite_flops(loaded: dict, prompt: str) -> float | None:
    """The counted FLOPs of the stack's refiner rewriting `prompt`, if it is an LM refiner (else None)."""
    from promptlift.methods.refiner.lm import LMRefiner

    lifts = loaded["stack"][2] if "stack" in loaded else []
    refiner = next((lift for lift in lifts if lift.name == "refiner"), None)
    if refiner is None or not isinstance(refiner.refiner, LMRefiner):
        return None
    return flops(lambda: refiner.rewrite_prompts([prompt]))


if __name__ == "__main__":
    main()
