"""TextCraftor memory and time: K-step truncated, checkpointed back-propagation vs the whole chain, against one
plain training step (ratios).

    .venv/bin/python benchmarks/textcraftor_memory.py [--steps 10 25 50] [--grad_steps 5] [--batch_size 8]

Every configuration trains the embedded model's text encoder for one step with the world rewards:
- plain: the denoising loss of one noisy latent through the UNet (what a plain fine-tuning step costs);
- truncated: TextCraftor, T sampling steps, gradient through the last K, each UNet call checkpointed;
- full: gradient through all T steps, nothing checkpointed.
Peak memory is the step's peak above the memory held before it: on CUDA torch's peak allocation
(`max_memory_allocated`); on CPU its counterpart, the bytes malloc has handed out and not had back (glibc's
`mallinfo2`: in-use arena + mmapped chunks), sampled every 0.2 ms. The resident set (RSS, sampled alike after
handing freed heap back to the OS) is printed beside it: it also counts what the allocator keeps after a free, as
CUDA's reserved memory does. Each configuration runs in fresh child processes, `--repeats` of them, medians
reported. Goal: truncated peak flat in T and <= 1.5x plain.
"""

import argparse
import multiprocessing as mp
import os
import statistics
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from promptlift.memory.sampler import PeakSampler  # noqa: E402
from record import add_results_option, ratio, write_results  # noqa: E402  (benchmarks/record.py)


def _measure(mode: str, steps: int, grad_steps: int, batch_size: int, threads: int, queue) -> None:
    import torch
    from diffusers import DDIMScheduler, DDPMScheduler

    from promptlift.methods.textcraftor.lift import swapped
    from promptlift.methods.textcraftor.sampling import decode, sample_with_grad
    from promptlift.methods.textcraftor.trainer import encode_conditioning
    from promptlift.pipeline import encode_prompts, load_pipeline
    from promptlift.rewards import load_reward
    from promptlift.training.diffusion import diffusion_loss

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    pipe = load_pipeline(None, dtype="float32")
    for m in (pipe.vae, pipe.unet):
        m.requires_grad_(False)
    original = {"text_encoder": __import__("copy").deepcopy(pipe.text_encoder).requires_grad_(False)}
    rewards = [(1.0, load_reward("world-aesthetic-reward")), (0.01, load_reward("world-clip"))]
    prompts = ["two red boats at sunset", "a white ball on the beach"] * (batch_size // 2)
    size = pipe.unet.config.sample_size * pipe.vae_scale_factor
    shape = (batch_size, pipe.unet.config.in_channels, pipe.unet.config.sample_size, pipe.unet.config.sample_size)
    cuda = pipe.device.type == "cuda"

    def step():
        if mode == "plain":
            embeds = encode_prompts(pipe, prompts, do_classifier_free_guidance=False, grad=True).prompt_embeds
            latents = torch.randn(shape, device=pipe.device)
            loss = diffusion_loss(pipe.unet, DDPMScheduler.from_config(pipe.scheduler.config), latents, embeds)
        else:
            with swapped(pipe, original):
                frozen = encode_conditioning(pipe, prompts, True, size)
            trainable = encode_conditioning(pipe, prompts, True, size, grad=True)
            k = grad_steps if mode == "truncated" else steps
            latents = sample_with_grad(pipe.unet, DDIMScheduler.from_config(pipe.scheduler.config),
                                       torch.randn(shape, device=pipe.device), frozen, trainable, steps, k, 5.0,
                                       gradient_checkpointing=mode == "truncated")
            images = decode(pipe.vae, latents, gradient_checkpointing=mode == "truncated")
            loss = -sum(w * r(images, prompts).mean() for w, r in rewards)
        loss.backward()
        pipe.text_encoder.zero_grad(set_to_none=True)

    step()  # warm-up: allocator pools, kernels
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
    t0 = time.perf_counter()
    with PeakSampler() as sampler:
        step()
    seconds = time.perf_counter() - t0
    extra = (torch.cuda.max_memory_allocated() - before, 0) if cuda else sampler.extra
    queue.put((*extra, seconds))


def run(mode: str, steps: int, args) -> tuple[float, float, float]:
    """Median (peak allocated bytes, peak resident bytes, seconds) over `repeats` fresh child processes."""
    ctx = mp.get_context("spawn")
    results = []
    for _ in range(args.repeats):
        queue = ctx.Queue()
        proc = ctx.Process(target=_measure, args=(mode, steps, args.grad_steps, args.batch_size, args.num_threads, queue))
        proc.start()
        results.append(queue.get())
        proc.join()
    return tuple(statistics.median(r[i] for r in results) for i in range(3))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, nargs="+", default=[10, 25, 50])
    parser.add_argument("--grad_steps", type=int, default=5)
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--num_threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3, help="Fresh processes per configuration (medians).")
    parser.add_argument("--modes", nargs="+", default=["truncated", "full"], choices=["truncated", "full"])
    add_results_option(parser, "textcraftor_memory")
    args = parser.parse_args()
    plain = run("plain", 1, args)
    mib = [x / 2**20 for x in plain[:2]]
    print(f"plain training step: peak +{mib[0]:.1f} MiB allocated, +{mib[1]:.1f} MiB resident, {plain[2]:.2f} s "
          f"(batch {args.batch_size})")
    print(f"{'T':>4} {'mode':>10} {'alloc MiB':>10} {'x plain':>8} {'RSS MiB':>8} {'x plain':>8} {'time s':>7} {'x plain':>8}")
    rows, ratios = [], []
    for steps in args.steps:
        for mode in args.modes:
            r = run(mode, steps, args)
            cells = [f"{r[i] / 2**20:>{w}.1f} {r[i] / max(plain[i], 1):>8.2f}" for i, w in ((0, 10), (1, 8))]
            print(f"{steps:>4} {mode:>10} {' '.join(cells)} {r[2]:>7.2f} {r[2] / plain[2]:>8.2f}")
            rows.append({"steps": steps, "mode": mode, "alloc_mib": round(r[0] / 2**20, 1), "rss_mib": round(r[1] / 2**20, 1),
                         "seconds": round(r[2], 3)})
            goal = "<= 1.5x" if mode == "truncated" else None
            ratios.append(ratio(f"{mode}, T = {steps}: peak allocated / a plain step's", r[0] / max(plain[0], 1), goal))
    write_results(args.results, f"TextCraftor's step memory (K = {args.grad_steps}, batch {args.batch_size})", ratios,
                  plain={"alloc_mib": round(plain[0] / 2**20, 1), "rss_mib": round(plain[1] / 2**20, 1),
                         "seconds": round(plain[2], 3)}, rows=rows,
                  settings={k: getattr(args, k) for k in ("steps", "grad_steps", "batch_size", "num_threads", "repeats")})


if __name__ == "__main__":
    main()
