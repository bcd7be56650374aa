"""How much a SUR-adapter changes each kind of prompt: the quantiles of its relative change (the input of the lift's
`gate`) on world prompts away from the report (0-199) and selection (800-863) prompts, by phrasing; and how its change
meets the bundle refiner's: their cosine and size ratio at the positions of the phrases the refiner appends.
An adapter that reads the refiner's rewrite (`reads`, default: its folder's lift.json) is measured on the rewrites,
as the lifted stack runs it (the cosine and ratio then are not printed: the rewrite passes through the adapter).

    .venv/bin/python research/sur_gate.py [--adapter PATH] [--reads user|rewrite] [--first 400 --last 600] [--num_threads 1]

The bundle's gate was read off this: literal and complex prompts below LOW, narrative-train ones above HIGH. For an
adapter with a learnt gate (`gate_columns`) the quantiles of its weights follow.
"""

import argparse

import torch

from promptlift.data import load_prompt_set
from promptlift.methods import METHODS
from promptlift.methods.refiner import Refiner
from promptlift.methods.sur_adapter.lift import LEARNT, SURAdapterLift, relative_change
from promptlift.pipeline import encode_prompts, load_pipeline, prompt_padding_mask

SETS = ("world-complex", "world-literal", "world-mixed-val", "world-narrative-train", "world-narrative-val")
QUANTILES = (0.0, 0.05, 0.5, 0.95, 1.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--adapter", default=None, help="Adapter folder; default: the bundle's.")
    parser.add_argument("--reads", choices=("user", "rewrite"), default=None, help="Default: the adapter's lift.json.")
    parser.add_argument("--first", type=int, default=400)
    parser.add_argument("--last", type=int, default=600)
    parser.add_argument("--num_threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.num_threads)
    pipe = load_pipeline(None)
    folder = args.adapter or METHODS["sur-adapter"].bundle_weights
    lift = SURAdapterLift("sur-adapter", folder, reads=args.reads or "default")
    gate, lift.gate = lift.gate, None  # the folder's own (lift.json), if any; the changes are measured ungated
    refiner = Refiner.load(METHODS["refiner"].bundle_weights, pipe)
    print(f"relative change, prompts {args.first}-{args.last - 1}; quantiles {QUANTILES}; then, at the refiner's "
          "appended positions, the mean cosine of the adapter's change and the rewrite's, and the ratio of their norms"
          + (" (the adapter reads the rewrites)" if lift.reads == "rewrite" else ""))
    for name in SETS:
        prompts = [r["prompt"] for r in load_prompt_set(name, num_prompts=args.last)[args.first:]]
        changes, cosines, ratios, learnt = [], [], [], []
        for i in range(0, len(prompts), 50):
            batch = prompts[i:i + 50]
            rewrites = [r or p for r, p in zip(refiner.one_shot(batch), batch)]
            read = rewrites if lift.reads == "rewrite" else batch
            base = encode_prompts(pipe, read).prompt_embeds
            adapted = encode_prompts(pipe, read, lifts=[lift]).prompt_embeds
            mask = prompt_padding_mask(pipe.tokenizer, read, base.shape[1])
            changes.append(relative_change(adapted, base, mask))
            if gate == LEARNT:
                with torch.no_grad():
                    learnt.append(lift.adapter.gate_logit(base, mask).sigmoid())
            if lift.reads == "rewrite":
                continue
            rewrite = encode_prompts(pipe, rewrites).prompt_embeds - base
            appended = rewrite.norm(dim=-1) > 1e-3  # a causal encoder: the user's own tokens are unchanged
            change = adapted - base
            cosines.append(torch.nn.functional.cosine_similarity(change, rewrite, dim=-1)[appended])
            ratios.append((change.norm(dim=-1) / rewrite.norm(dim=-1).clamp_min(1e-6))[appended])
        changes = torch.cat(changes)
        q = torch.quantile(changes, torch.tensor(QUANTILES))
        weights = "" if gate in (None, LEARNT) else (
            f"; gate {gate[0]:g}:{gate[1]:g} gives weight 0 to {(changes <= gate[0]).sum()}, 1 to "
            f"{(changes >= gate[1]).sum()}, between to {((changes > gate[0]) & (changes < gate[1])).sum()}")
        meets = f"   cosine {torch.cat(cosines).mean():+.2f}, ratio {torch.cat(ratios).median():.1f}" if cosines else ""
        if learnt:
            weights = "; learnt gate's weights " + "  ".join(
                f"{x:.2f}" for x in torch.quantile(torch.cat(learnt), torch.tensor(QUANTILES)).tolist())
        print(f"{name:>22}: " + "  ".join(f"{x:.3f}" for x in q.tolist()) + meets + weights)


if __name__ == "__main__":
    main()
