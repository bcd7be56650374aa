"""How much of a narrative prompt's content can the SUR-adapter's teacher carry to phrasings it never saw?

    .venv/bin/python research/teacher_probe.py [--teacher PATH[@LAYER] ...] [--standardise] [--steps 300]
        [--results benchmarks/results/teacher-probe.json]

Probes of each teacher's hidden states (default: the packaged all-MiniLM-L6-v2, last layer; `PATH@LAYER` picks a
layer, negative counting from the top), trained on world narrative-train prompts (4000; optionally plus 2000 literal
ones) and tested on 1000 narrative-val prompts, whose phrasings and templates are all unseen: a linear probe of the
mean-pooled features, and an attention-pooling probe over the token features (what an adapter reading the teacher's
tokens could at best use). With several teachers, also an attention probe over all of them at once (one pooling per
teacher, the pooled vectors concatenated): the ceiling of an adapter that reads them together. `--standardise`
scales every feature to zero mean and unit variance over the training prompts' real tokens (a decoder LLM's hidden
states have a few huge dimensions). The accuracy per attribute bounds what an adapter driven by those teachers can get
right on narrative-val.
"""

import argparse

import torch

from promptlift.methods.sur_adapter.llm import default_teacher
from promptlift.files import atomic_write_json
from promptlift.runs import run_record
from promptlift.world.dataset import iter_prompt_set
from promptlift.world.scene import ATTRIBUTES

SETS = {"narrative-train": (4000, 1), "literal": (2000, 2), "narrative-val": (1000, 0)}  # name -> (prompts, seed)


class AttentionProbe(torch.nn.Module):
    """One learned query per teacher scores its tokens; the weighted means, concatenated, feed a linear classifier."""

    def __init__(self, dims: list[int], classes: int):
        super().__init__()
        self.scores = torch.nn.ModuleList(torch.nn.Linear(d, 1) for d in dims)
        self.out = torch.nn.Linear(sum(dims), classes)

    def forward(self, inputs):
        pooled = []
        for score, (h, mask) in zip(self.scores, inputs):
            w = score(h).squeeze(-1).masked_fill(~mask, float("-inf")).softmax(1)  # (B, T)
            pooled.append((w[..., None] * h).sum(1))
        return self.out(torch.cat(pooled, -1))


class MeanProbe(torch.nn.Module):
    def __init__(self, dims: list[int], classes: int):
        super().__init__()
        self.out = torch.nn.Linear(sum(dims), classes)

    def forward(self, inputs):
        return self.out(torch.cat([(h * m[..., None]).sum(1) / m.sum(1, keepdim=True) for h, m in inputs], -1))


def load_teacher(spec: str):
    """(tokenizer, model, layer) of `PATH[@LAYER]` (PATH: a folder, a hub id, a .gguf file or "smollm2")."""
    from transformers import AutoModel

    from promptlift.methods.language_models import load_causal_lm

    path, _, layer = spec.rpartition("@") if "@" in spec else (spec, "", "-1")
    model, tokenizer = load_causal_lm(path, model_class=AutoModel)
    return tokenizer, model.eval(), int(layer)

    from promptlift.methods.language_models import resolve_lm

    path, _, layer = spec.rpartition("@") if "@" in spec else (spec, "", "-1")
    folder, gguf = resolve_lm(path)
    extra = {"gguf_file": gguf} if gguf else {}
    tokenizer = AutoTokenizer.from_pretrained(folder, **extra)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer, AutoModel.from_pretrained(folder, dtype=torch.float32, **extra).eval(), int(layer)


@torch.no_grad()
def prompt_features(teacher, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """(hidden states (N, T, D), real-token mask (N, T)) of `prompts` at the teacher's layer."""
    tokenizer, model, layer = teacher
    hs, masks = [], []
    for i in range(0, len(prompts), 256):
        tok = tokenizer(prompts[i : i + 256], padding="max_length", max_length=40, truncation=True, return_tensors="pt")
        hs.append(model(**tok, output_hidden_states=True).hidden_states[layer])
        masks.append(tok.attention_mask.bool())
    return torch.cat(hs), torch.cat(masks)


def prompt_set(name: str) -> list[dict]:
    n, seed = SETS[name]
    return list(iter_prompt_set(name, n, seed=seed))


def labels(rows: list[dict]) -> dict[str, torch.Tensor]:
    """{attribute: class indices} of attribute-labelled rows ({"setting": ..., ...})."""
    return {a: torch.tensor([list(v).index(r[a]) for r in rows]) for a, v in ATTRIBUTES.items()}


def standardise(per_set: dict[str, tuple], fit: str = "narrative-train") -> dict[str, tuple]:
    h, mask = per_set[fit]
    real = h[mask]
    mean, std = real.mean(0), real.std(0).clamp_min(1e-6)
    return {name: ((x - mean) / std * m[..., None], m) for name, (x, m) in per_set.items()}


def fit_probe(probe: torch.nn.Module, inputs: list[tuple], y: torch.Tensor, steps: int, lr: float = 1e-2,
              batch: int = 256, weight_decay: float = 0.0, warmup: int = 0) -> torch.nn.Module:
    """Train `probe` on `inputs` (one (h, mask) per teacher) and labels `y`: AdamW (Adam at weight decay 0) on random
    batches, the learning rate warmed up linearly over `warmup` steps."""
    opt = torch.optim.AdamW(probe.parameters(), lr, weight_decay=weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / warmup) if warmup else 1.0)
    for _ in range(steps):
        idx = torch.randint(0, len(y), (batch,))
        loss = torch.nn.functional.cross_entropy(probe([(h[idx], m[idx]) for h, m in inputs]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        schedule.step()
    return probe


def accuracy(probe_cls, train: list[list[tuple]], train_labels: list[dict], test: list[tuple], test_labels: dict,
             attribute: str, steps: int) -> float:
    """Train a probe on the concatenation of `train` (each: one (h, mask) per teacher), test on `test`."""
    inputs = [(torch.cat([t[i][0] for t in train]), torch.cat([t[i][1] for t in train])) for i in range(len(test))]
    y = torch.cat([lab[attribute] for lab in train_labels])
    torch.manual_seed(0)
    probe = fit_probe(probe_cls([h.shape[-1] for h, _ in inputs], len(ATTRIBUTES[attribute])), inputs, y, steps)
    with torch.no_grad():
        return float((probe(test).argmax(1) == test_labels[attribute]).float().mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--teacher", action="append", help="PATH[@LAYER] of a transformers model (repeatable); "
                                                           "default: all-MiniLM-L6-v2's last layer")
    parser.add_argument("--standardise", action="store_true", help="zero mean, unit variance per feature")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--num_threads", type=int, default=1)
    parser.add_argument("--results", help="write the accuracies (with the run's date, commit, machine) to this JSON")
    args = parser.parse_args()
    torch.set_num_threads(args.num_threads)
    specs = args.teacher or [default_teacher()]
    rows = {name: prompt_set(name) for name in SETS}
    per_teacher = []
    for spec in specs:
        teacher = load_teacher(spec)
        sets = {name: prompt_features(teacher, [r["prompt"] for r in rows[name]]) for name in SETS}
        per_teacher.append(standardise(sets) if args.standardise else sets)
    label = {name: labels([r["expected"] for r in rows[name]]) for name in SETS}
    results = []
    groups = [([i], spec) for i, spec in enumerate(specs)] + ([(list(range(len(specs))), " + ".join(specs))]
                                                               if len(specs) > 1 else [])
    print(f"{'teacher':<40} {'probe':<10} {'trained on':<26} " + " ".join(f"{a:>7}" for a in ATTRIBUTES))
    for members, name in groups:
        for probe_name, probe_cls in (("mean", MeanProbe), ("attention", AttentionProbe)):
            if len(members) > 1 and probe_name == "mean":
                continue
            for data_name, data in (("narrative-train", ["narrative-train"]),
                                    ("narrative-train + literal", ["narrative-train", "literal"])):
                train = [[per_teacher[i][d] for i in members] for d in data]
                test = [per_teacher[i]["narrative-val"] for i in members]
                accs = {a: accuracy(probe_cls, train, [label[d] for d in data], test, label["narrative-val"], a,
                                    args.steps) for a in ATTRIBUTES}
                results.append({"teacher": name, "probe": probe_name, "trained_on": data_name, **accs})
                print(f"{name[-40:]:<40} {probe_name:<10} {data_name:<26} "
                      + " ".join(f"{100 * x:>7.1f}" for x in accs.values()), flush=True)
    if args.results:
        atomic_write_json(args.results, {"run": run_record(), "standardise": args.standardise, "steps": args.steps,
                                         "rows": results})


if __name__ == "__main__":
    main()
