"""How much of a narrative prompt's content can the SUR-adapter's teacher carry to phrasings it never saw?

    .venv/bin/python scripts/teacher_probe.py [--teacher PATH] [--steps 300]

Probes of the teacher's last hidden states (default: the packaged all-MiniLM-L6-v2), trained on world
narrative-train prompts (4000; optionally plus 2000 literal ones) and tested on 1000 narrative-val prompts, whose
phrasings and templates are all unseen: a linear probe of the mean-pooled features, and an attention-pooling probe
over the token features (what an adapter reading the teacher's tokens could at best use). Its accuracy per
attribute bounds what any adapter driven by this teacher can get right on narrative-val.
"""

import argparse

import torch

from promptlift.methods.sur_adapter.llm import default_teacher
from promptlift.world.dataset import iter_prompt_set
from promptlift.world.scene import ATTRIBUTES


class AttentionProbe(torch.nn.Module):
    """One learned query scores the tokens; the weighted mean feeds a linear classifier."""

    def __init__(self, dim: int, classes: int):
        super().__init__()
        self.score, self.out = torch.nn.Linear(dim, 1), torch.nn.Linear(dim, classes)

    def forward(self, h, mask):
        w = self.score(h).squeeze(-1).masked_fill(~mask, float("-inf")).softmax(1)  # (B, T)
        return self.out((w[..., None] * h).sum(1))


class MeanProbe(torch.nn.Linear):
    def forward(self, h, mask):
        m = mask[..., None].to(h.dtype)
        return super().forward((h * m).sum(1) / m.sum(1))


def features(model, tokenizer, name: str, n: int, seed: int):
    rows = list(iter_prompt_set(name, n, seed=seed))
    labels = {a: torch.tensor([list(v).index(r["expected"][a]) for r in rows]) for a, v in ATTRIBUTES.items()}
    hs, masks = [], []
    with torch.no_grad():
        for i in range(0, n, 256):
            tok = tokenizer([r["prompt"] for r in rows[i : i + 256]], padding="max_length", max_length=40,
                            truncation=True, return_tensors="pt")
            hs.append(model(**tok).last_hidden_state)  # (B, T, D)
            masks.append(tok.attention_mask.bool())
    return torch.cat(hs), torch.cat(masks), labels


def accuracy(probe_cls, train: list, test, attribute: str, steps: int) -> float:
    h, mask = torch.cat([t[0] for t in train]), torch.cat([t[1] for t in train])
    y = torch.cat([t[2][attribute] for t in train])
    torch.manual_seed(0)
    probe = probe_cls(h.shape[-1], len(ATTRIBUTES[attribute]))
    opt = torch.optim.Adam(probe.parameters(), 1e-2)
    for _ in range(steps):
        idx = torch.randint(0, len(y), (256,))
        loss = torch.nn.functional.cross_entropy(probe(h[idx], mask[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        return float((probe(test[0], test[1]).argmax(1) == test[2][attribute]).float().mean())


def main() -> None:
    from transformers import AutoModel, AutoTokenizer

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--teacher", default=None, help="transformers encoder folder or id; default: all-MiniLM-L6-v2")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--num_threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.num_threads)
    path = args.teacher or default_teacher()
    tokenizer, model = AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path).eval()
    train = features(model, tokenizer, "narrative-train", 4000, 1)
    literal = features(model, tokenizer, "literal", 2000, 2)
    test = features(model, tokenizer, "narrative-val", 1000, 0)
    print(f"{'probe':<10} {'trained on':<24} " + " ".join(f"{a:>7}" for a in ATTRIBUTES))
    for probe_name, probe_cls in (("mean", MeanProbe), ("attention", AttentionProbe)):
        for data_name, data in (("narrative-train", [train]), ("narrative-train + literal", [train, literal])):
            accs = [accuracy(probe_cls, data, test, a, args.steps) for a in ATTRIBUTES]
            print(f"{probe_name:<10} {data_name:<24} " + " ".join(f"{100 * x:>7.1f}" for x in accs))


if __name__ == "__main__":
    main()
