"""Why does the SUR-adapter's attribute head classify unseen narrative colours worse than the teacher probe?

    .venv/bin/python research/head_ablation.py --triples data/world-sur-triples [--features runs/head-ablation.pt]
        [--results benchmarks/results/head-ablation.json]

The probe (research/teacher_probe.py: an attention pool over the MiniLM teacher's token states and a linear classifier
per attribute) and the adapter's head (the same pool and classifier, inside the adapter) differ in three ways: the
rows they learn from (the probe: 4 000 narrative-train prompts and 2 000 literal ones; the head: every simple column
of the triples), a LayerNorm on the teacher's states (the head's), and the optimiser (the probe: Adam at 1e-2, 300
steps of 256; the head: the adapter's AdamW at 5e-4 with 100 warm-up steps, 750 steps of 64). Each row of the table
moves the probe one or more of these ways and reports its accuracy on narrative-val (the report scenes, seed 0,
1 000 prompts; the selection scenes, seed 3, 200) and on the selection scenes' literal and mixed-val prompts (200
each), per attribute and all four at once (the prompts whose four attributes it classifies right). Teacher features
are computed once (`--features` keeps them for another run).
"""

import argparse
import json
from pathlib import Path

import torch

from promptlift.methods.sur_adapter.llm import default_teacher
from promptlift.files import atomic_path, atomic_write_json
from promptlift.runs import run_record
from promptlift.world.dataset import iter_prompt_set
from promptlift.world.scene import ATTRIBUTES
from teacher_probe import AttentionProbe, fit_probe, labels, load_teacher, prompt_features

PROMPT_SETS = {"narrative-train": ("narrative-train", 4000, 1), "literal-train": ("literal", 2000, 2),
               "narrative-val/report": ("narrative-val", 1000, 0), "narrative-val/selection": ("narrative-val", 200, 3),
               "literal/selection": ("literal", 200, 3), "mixed-val/selection": ("mixed-val", 200, 3)}
TRIPLE_COLUMNS = ("narrative", "literal", "complex", "mixed")
TESTS = ["narrative-val/report", "narrative-val/selection", "literal/selection", "mixed-val/selection"]
PROBE = {"lr": 1e-2, "steps": 300, "batch": 256, "weight_decay": 0.0, "warmup": 0}  # teacher_probe.py's optimiser
HEAD = {"lr": 5e-4, "steps": 750, "batch": 64, "weight_decay": 1e-2, "warmup": 100}  # configs/world/sur-adapter.yaml
VARIANTS = [  # (name, training rows, LayerNorm, optimiser)
    ("the probe (teacher_probe.py)", ["narrative-train", "literal-train"], False, PROBE),
    ("the probe on every triple column", [f"triples/{c}" for c in TRIPLE_COLUMNS], False, PROBE),
    ("the head as the bundle trains it", [f"triples/{c}" for c in TRIPLE_COLUMNS], True, HEAD),
    ("the head on narrative rows", ["triples/narrative"], True, HEAD),
    ("the head on narrative rows, no LayerNorm", ["triples/narrative"], False, HEAD),
    ("the head on narrative and mixed rows, no LayerNorm", ["triples/narrative", "triples/mixed"], False, HEAD),
    ("the probe on narrative rows", ["triples/narrative"], False, PROBE),
]


class NormedProbe(torch.nn.Module):
    """The head's form: a learnt LayerNorm on the teacher's states, then the attention pool and the classifier."""

    def __init__(self, dim: int, classes: int):
        super().__init__()
        self.norm, self.probe = torch.nn.LayerNorm(dim), AttentionProbe([dim], classes)

    def forward(self, inputs):
        return self.probe([(self.norm(h), m) for h, m in inputs])


def labelled_sets(teacher, triples: Path) -> dict[str, tuple[tuple[torch.Tensor, torch.Tensor], dict]]:
    """name -> ((states, mask), {attribute: class indices}) of every prompt set and triple column."""
    sets = {}
    for name, (style, n, seed) in PROMPT_SETS.items():
        rows = list(iter_prompt_set(style, n, seed=seed))
        sets[name] = prompt_features(teacher, [r["prompt"] for r in rows]), labels([r["expected"] for r in rows])
    with open(triples / "metadata.jsonl", encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    for column in TRIPLE_COLUMNS:
        sets[f"triples/{column}"] = prompt_features(teacher, [r[column] for r in rows]), labels(rows)
    return sets


def correct(sets, train: list[str], norm: bool, opt: dict, attribute: str) -> dict[str, torch.Tensor]:
    """{test set: whether each of its prompts' `attribute` is classified right} of a probe trained on `train`."""
    inputs = [(torch.cat([sets[s][0][0] for s in train]), torch.cat([sets[s][0][1] for s in train]))]
    y = torch.cat([sets[s][1][attribute] for s in train])
    torch.manual_seed(0)
    dim, classes = inputs[0][0].shape[-1], len(ATTRIBUTES[attribute])
    probe = NormedProbe(dim, classes) if norm else AttentionProbe([dim], classes)
    fit_probe(probe, inputs, y, opt["steps"], opt["lr"], opt["batch"], opt["weight_decay"], opt["warmup"])
    with torch.no_grad():
        return {t: probe([sets[t][0]]).argmax(1) == sets[t][1][attribute] for t in TESTS}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--triples", type=Path, default=Path("data/world-sur-triples"),
                        help="the SUR-adapter's training triples (`promptlift curate --config configs/world/curate-sur.yaml`)")
    parser.add_argument("--features", type=Path, help="keep the teacher's features here (read them if present)")
    parser.add_argument("--num_threads", type=int, default=1)
    parser.add_argument("--results", help="write the accuracies (with the run's date, commit, machine) to this JSON")
    args = parser.parse_args()
    torch.set_num_threads(args.num_threads)
    if not (args.triples / "metadata.jsonl").is_file():
        parser.error(f"--triples {str(args.triples)!r} holds no metadata.jsonl: build the triples with `promptlift "
                     "curate --config configs/world/curate-sur.yaml`.")
    if args.features and args.features.is_file():
        sets = torch.load(args.features)
    else:
        sets = labelled_sets(load_teacher(default_teacher()), args.triples)
        if args.features:
            with atomic_path(args.features) as tmp:
                torch.save(sets, tmp)
    columns = [*ATTRIBUTES, "all four"]
    print(f"{'':<52} " + "  ".join(f"{a:>23}" for a in columns))
    print(f"{'':<52} " + "  ".join(f"{'val-r / val-s / lit / mix':>23}" for _ in columns))
    rows = []
    for name, train, norm, opt in VARIANTS:
        right = {a: correct(sets, train, norm, opt, a) for a in ATTRIBUTES}
        accs = {a: {t: float(r[t].float().mean()) for t in TESTS} for a, r in right.items()}
        # every attribute of the prompt right: the all-four accuracy an adapter rendering these classes could reach
        all_four = {t: float(torch.stack([right[a][t] for a in ATTRIBUTES]).all(0).float().mean()) for t in TESTS}
        rows.append({"variant": name, "trained_on": train, "layer_norm": norm, "optimiser": opt, "accuracy": accs,
                     "all_four": all_four})
        print(f"{name:<52} " + "  ".join(" / ".join(f"{100 * x:.1f}" for x in v.values()).rjust(23)
                                         for v in [*accs.values(), all_four]), flush=True)
    if args.results:
        atomic_write_json(args.results, {"run": run_record(), "tests": TESTS, "rows": rows})


if __name__ == "__main__":
    main()
