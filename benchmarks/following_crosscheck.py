"""GenEval's rules and the question judge checked where the truth is known: on the renderer's own images of world
prompts' scenes, the embedded bundle's attribute judge behind the detector and VQA interfaces.

    .venv/bin/python benchmarks/following_crosscheck.py [--num_prompts 1000] [--sets literal,complex]

Per prompt set: how often GenEval's verdict and the questions' all-right equal the attribute judge's kind, colour and
count all right (the rules' agreement, 1.0 when they are implemented as the judge reads), and the share of the true
renders each passes (how often the judge, as a detector, reads a true image as right). Writes
benchmarks/results/following-crosscheck.json with the run record; scripts/make_reports.py shows it.
"""

import argparse

import torch

from promptlift.judges.bundle import BUNDLE_DIR, load_judge
from promptlift.judges.following import rule_agreement
from promptlift.world import Quality, sample_scene
from promptlift.world.dataset import iter_prompt_set
from promptlift.world.render import render
from record import RESULTS, write_results  # benchmarks/record.py


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num_prompts", type=int, default=1000)
    parser.add_argument("--sets", default="literal,complex", help="World prompt sets, comma-separated: their scenes "
                        "(a style's words do not change its scenes: literal and narrative-val share theirs; complex "
                        "draws its scenes at the best quality).")
    parser.add_argument("--results", default=RESULTS / "following-crosscheck.json")
    args = parser.parse_args()
    judge = load_judge(BUNDLE_DIR, "attributes")
    sets = {}
    for name in args.sets.split(","):
        records = list(iter_prompt_set(name, args.num_prompts))  # the report scenes (seed 0), as `world-NAME`
        quality = Quality.best() if name == "complex" else None
        images = torch.stack([torch.from_numpy(render(sample_scene(r["scene_seed"], quality=quality)).copy())
                              .permute(2, 0, 1).float() / 255 for r in records])
        sets[name] = rule_agreement(images, records, judge)
        print(name, sets[name], flush=True)
    write_results(args.results, "GenEval's rules and the question judge on true world renders", [], sets=sets)


if __name__ == "__main__":
    main()
