"""Rendering throughput of the world on one core: scenes/s, and the ratio to the 1000 scenes/s target.

    .venv/bin/python benchmarks/world_render.py [--num_scenes 3000] [--size 64]

Also times a baseline in the same process (drawing and encoding a blank image of the same size), so
the printed ratios hold on a noisy machine.
"""

import argparse
import io
import os
import time

import numpy as np
from PIL import Image

from promptlift.world import render_image, sample_scene, scene_seed
from record import add_results_option, ratio, write_results  # benchmarks/record.py

TARGET = 1000.0


def rate(fn, n: int) -> float:
    """Calls per second of fn(i) over n calls, after a short warm-up."""
    for i in range(min(50, n)):
        fn(i)
    start = time.perf_counter()
    for i in range(n):
        fn(i)
    return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num_scenes", type=int, default=3000)
    parser.add_argument("--size", type=int, default=64)
    add_results_option(parser, "world_render")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # one core
    n, size = args.num_scenes, args.size
    scenes = [sample_scene(scene_seed(0, i)) for i in range(n)]

    def png(image):
        buf = io.BytesIO()
        image.save(buf, format="PNG", compress_level=1)

    blank = np.zeros((size, size, 3), np.uint8)
    results = {
        "sample": rate(lambda i: sample_scene(scene_seed(1, i)), n),
        "render": rate(lambda i: render_image(scenes[i], size), n),
        "render+png": rate(lambda i: png(render_image(scenes[i], size)), n),
        "baseline blank+png": rate(lambda i: png(Image.fromarray(blank)), n),
    }
    print(f"one core, {size}px, {n} scenes")
    for name, r in results.items():
        print(f"  {name:20s} {r:9.0f} /s")
    print(f"render / target ({TARGET:.0f}/s):        {results['render'] / TARGET:.2f}x")
    print(f"render+png / blank+png baseline:   {results['render+png'] / results['baseline blank+png']:.2f}x")
    write_results(args.results, "World rendering on one core", [
        ratio(f"render rate / target ({TARGET:.0f} scenes/s)", results["render"] / TARGET, ">= 1.0x"),
        ratio("render + PNG / blank image + PNG", results["render+png"] / results["baseline blank+png"])],
        settings={"num_scenes": n, "size": size}, per_second={k: round(v, 1) for k, v in results.items()})


if __name__ == "__main__":
    main()
