"""Prompt refiner: coarsening buckets, continuation targets, training on every architecture (all four losses), the
three inference strategies within the token budget, the text-only variant, `refine` and `generate --refine`."""

import json
import random
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from promptlift.cli import cli
from promptlift.methods.refiner.config import RefinerConfig
from promptlift.methods.refiner.data import BUCKETS, coarse_pairs, coarsen, continuation, shuffle_phrases
from promptlift.methods.refiner.lift import Refiner
from promptlift.pipeline import encode_prompts, join_prompt, load_lifts, load_pipeline
from helpers import run_cli

REAL_PROMPTS = Path(__file__).resolve().parents[2] / "shared" / "benchmarks" / "prompt_pairs_and_collections" / "imagereward_refl_data.json"


def run_refiner(model, data, out, bundle, *extra):
    args = ["train", "refiner", "--pretrained_model_name_or_path", model,
            "--eval_prompts", "literal", "--eval_judge", "world-aesthetic", "--train_data", data, "--output_dir", out,
            "--max_train_steps", 4, "--train_batch_size", 3, "--eval_steps", 2, "--checkpointing_steps", 2,
            "--num_eval_prompts", 2, "--eval_inference_steps", 2, "--eval_max_new_tokens", 5, "--d_model", 32,
            "--num_decoder_layers", 2, "--reward_option", f"world-aesthetic.bundle_dir={bundle}", "--judge_bundle", bundle,
            "--learning_rate", 1e-3, "--lr_warmup_steps", 1, "--logging_steps", 1, *extra]
    return run_cli(*args)


def test_coarsen_keeps_the_leading_phrases_within_each_bucket():
    fine = "two red boats, sunset, warm evening sky, soft lighting, highly detailed, harmonious colors"
    assert coarsen(fine, (1, 5)) == "two red boats, sunset"
    assert coarsen(fine, (6, 10)) == "two red boats, sunset, warm evening sky, soft lighting"
    long = "a very long first phrase that goes on and on for many many words indeed"
    assert coarsen(long, (1, 5)) == "a very long first phrase"
    pairs = coarse_pairs([fine, "a cat"])
    assert all(c != f for c, f in pairs) and len(pairs) == len(set(pairs))


def test_continuation_is_what_the_coarse_prompt_does_not_say():
    fine = "two red boats, sunset, warm evening sky, soft lighting, highly detailed"
    assert continuation("two red boats at sunset", fine) == "warm evening sky, soft lighting, highly detailed"
    assert continuation("a white ball on the beach", "one white ball, beach, ocean, sandy shore") == "ocean, sandy shore"
    # words that name nothing ("of", "a") do not make a phrase said
    assert continuation("a knight at night", "knight, oil painting of a castle") == "oil painting of a castle"
    # a coarse prompt the fine one starts with (a coarsened one) leaves the rest, even mid-phrase
    assert continuation("a robot with long neon", "a robot with long neon braids, studio lighting") == "braids, studio lighting"
    assert continuation("no faces, brittle", "no faces. brittle. highly detailed") == "highly detailed"
    assert continuation("two red boats", "two red boats") == ""
    assert join_prompt("a cat", "") == "a cat" and join_prompt("a cat,", ", soft light") == "a cat, soft light"
    assert join_prompt("I saw a cat.", "soft light") == "I saw a cat, soft light"


def test_shuffle_phrases_keeps_every_phrase_and_follows_the_seed():
    text = "warm evening sky, soft lighting, highly detailed, sharp focus, clean background"
    orders = {shuffle_phrases(text, random.Random(seed)) for seed in range(20)}
    assert len(orders) > 1 and all(sorted(o.split(", ")) == sorted(text.split(", ")) for o in orders)
    assert shuffle_phrases(text, random.Random(3)) == shuffle_phrases(text, random.Random(3))


@pytest.mark.skipif(not REAL_PROMPTS.is_file(), reason="../shared/benchmarks is not beside the project")
def test_coarsen_real_prompts_into_the_paper_buckets():
    fine = [row["text"] for row in json.loads(REAL_PROMPTS.read_text())[:300]]
    for lo, hi in BUCKETS:
        coarse = [coarsen(f, (lo, hi)) for f in fine]
        counts = [len(c.replace(",", " ").split()) for c in coarse if c]
        assert counts and max(counts) <= hi
        long_enough = [n for f, n in zip(fine, counts) if len(f.split()) >= hi]
        assert sum(n >= lo for n in long_enough) >= 0.9 * len(long_enough)


@pytest.fixture(scope="module")
def sd1_refiner(tmp_path_factory, tiny_pipeline_dirs, tiny_bundle_dir, world_set):
    out = tmp_path_factory.mktemp("refiner") / "run"
    result = run_refiner(tiny_pipeline_dirs["sd1"], world_set, out, tiny_bundle_dir, "--diffusion_batch_size", 2,
                         "--shuffle_phrases")
    assert result.exit_code == 0, result.output
    return out


def test_all_four_losses_train_and_the_unet_stays_frozen(sd1_refiner, tiny_pipeline_dirs):
    logs = [json.loads(x) for x in (sd1_refiner / "logs.jsonl").read_text().splitlines()]
    steps = [x for x in logs if "loss" in x]
    assert steps and all(x["diffusion"] > 0 and x["ce"] > 0 and x["align"] >= 0 for x in steps)
    evals = [x["eval"] for x in logs if "eval" in x]
    assert evals and "win_rate_vs_base" in evals[-1] and evals[-1]["samples"]
    refiner = Refiner.load(sd1_refiner / "final", load_pipeline(tiny_pipeline_dirs["sd1"]))
    assert refiner.model.adapter_out.weight.abs().sum() > 0, "the zero-initialised adapter output was trained"


@pytest.mark.parametrize("arch", ["sd2", "sdxl"])
def test_sd2_and_sdxl_train(tmp_path, arch, tiny_pipeline_dirs, tiny_bundle_dir, world_set):
    """SDXL's refiner rewrites the whole prompt (`extend_coarse: false`): at most `new_tokens` per candidate."""
    extra = ["--no-extend_coarse"] if arch == "sdxl" else []
    result = run_refiner(tiny_pipeline_dirs[arch], world_set, tmp_path / "run", tiny_bundle_dir, *extra)
    assert result.exit_code == 0, result.output
    pipe = load_pipeline(tiny_pipeline_dirs[arch])
    refiner = Refiner.load(tmp_path / "run" / "final", pipe)
    first = refiner.candidates("two red boats at sunset", n=3, new_tokens=6, seed=1)
    assert len(first) == 3 and refiner.extend == (arch != "sdxl")
    for c in first:
        if arch == "sdxl":
            assert len(pipe.tokenizer(c, add_special_tokens=False).input_ids) <= 6
        else:
            assert c.startswith("two red boats at sunset")


def test_strategies_respect_the_token_budget(sd1_refiner, tiny_pipeline_dirs):
    pipe = load_pipeline(tiny_pipeline_dirs["sd1"])
    refiner = Refiner.load(sd1_refiner / "final", pipe)
    limit = pipe.tokenizer.model_max_length
    prompt = "two red boats at sunset"
    n_prompt = len(pipe.tokenizer(prompt + ",", add_special_tokens=False).input_ids)
    first = refiner.candidates(prompt, n=3, new_tokens=6, seed=1)
    assert len(first) == 3 and refiner.extend  # (diversity is measured in-world)
    for c in first:  # the user's prompt as typed, then at most 6 tokens (and a comma)
        assert c.startswith(prompt) and len(pipe.tokenizer(c, add_special_tokens=False).input_ids) <= n_prompt + 6
    extended = refiner.candidates(prompt, prefix=first[0], n=3, seed=2)
    assert all(c.startswith(first[0]) for c in extended)
    sentence = "I saw two red boats at sunset."  # refined as "I saw two red boats at sunset, ...", and extended so
    later = refiner.candidates(sentence, prefix=refiner.candidates(sentence, n=1, seed=1)[0], n=1, seed=2)[0]
    assert later.startswith("I saw two red boats at sunset") and refiner._split(sentence, later)[0] == sentence[:-1]
    edited = refiner.candidates(prompt, prefix="two red boats", n=3, seed=2)
    assert all(c.startswith("two red boats") for c in edited)
    spent = "x " * limit
    assert refiner.candidates("two red boats at sunset", prefix=spent, n=1) == [spent], "no budget left: unchanged"
    for text in refiner.one_shot(["a white ball on the beach"], max_new_tokens=500, sample=True):
        assert len(pipe.tokenizer(text).input_ids) <= limit
    lifts = load_lifts([f"refiner={sd1_refiner / 'final'}"], ["refiner.strategy=embeds"])
    lifted = load_pipeline(tiny_pipeline_dirs["sd1"], lifts=lifts)
    a = encode_prompts(lifted, ["two red boats at sunset"], lifts=lifts).prompt_embeds
    b = encode_prompts(pipe, ["two red boats at sunset"]).prompt_embeds
    assert a.shape == b.shape and not torch.allclose(a, b)


def test_one_shot_leaves_out_a_phrase_cut_by_the_length_limit(sd1_refiner, tiny_pipeline_dirs, world_set, monkeypatch):
    from promptlift.data.records import iter_records

    refiner = Refiner.load(sd1_refiner / "final", load_pipeline(tiny_pipeline_dirs["sd1"]))
    m, tokenizer = refiner.model, refiner.features.tokenizer
    # two phrases the decoder can write: from its training targets
    first, second = sorted({p for r in iter_records(world_set) for p in continuation(r.meta["literal"], r.meta["complex"]).split(", ")})[:2]

    def written(ids, eos):
        out = torch.tensor([m.writable([m.config["bos_token_id"], *ids] + ([m.config["eos_token_id"]] if eos else []))])
        monkeypatch.setattr(m, "generate", lambda *a, **k: out)

    ids = tokenizer(f"{first}, {second}", add_special_tokens=False).input_ids
    cut = tokenizer(f"{first},", add_special_tokens=False).input_ids + tokenizer(second, add_special_tokens=False).input_ids[:1]
    written(cut, eos=False)
    assert refiner.one_shot(["a red ball"])[0] == f"a red ball, {first}"
    written(ids, eos=True)
    assert refiner.one_shot(["a red ball"])[0] == f"a red ball, {first}, {second}"
    written(tokenizer(first, add_special_tokens=False).input_ids, eos=False)
    assert refiner.one_shot(["a red ball"])[0] == "a red ball"


def test_decoder_writes_only_the_training_tokens_and_keeps_any_prefix(sd1_refiner, tiny_pipeline_dirs, world_set):
    from promptlift.data.records import iter_records

    pipe = load_pipeline(tiny_pipeline_dirs["sd1"])
    refiner = Refiner.load(sd1_refiner / "final", pipe)
    targets = [continuation(r.meta["literal"], r.meta["complex"]) for r in iter_records(world_set)]
    seen = {i for ids in pipe.tokenizer(targets, add_special_tokens=False).input_ids for i in ids}
    writable = set(refiner.model.token_ids.tolist())
    assert seen <= writable and writable - seen <= set(refiner.features.special_ids.values())
    assert refiner.model.decoder.config.vocab_size == len(writable) < len(pipe.tokenizer)
    labels = refiner.features.fine_labels(targets[:4], 77)
    assert torch.equal(refiner.model.to_tokenizer_ids(refiner.model.to_decoder_ids(labels).clamp_min(0))[labels >= 0],
                       labels[labels >= 0])
    unseen = min(set(range(len(pipe.tokenizer))) - writable)
    with pytest.raises(ValueError, match="decoder vocabulary"):
        refiner.model.to_decoder_ids(torch.tensor([[unseen]]))
    prefix = "zyzzyva quokka"  # words no training prompt holds: kept in the text, left out of the decoder's context
    assert not set(pipe.tokenizer(prefix, add_special_tokens=False).input_ids) <= writable
    assert all(c.startswith(prefix) for c in refiner.candidates("two red boats", prefix=prefix, n=2))
    offered = refiner.candidates("two red boats", n=3)
    assert len(offered) == len(set(offered)) >= 1  # never the same candidate twice


def test_refine_and_generate_show_the_refined_prompt(tmp_path, sd1_refiner, tiny_pipeline_dirs, monkeypatch):
    import promptlift.cli as cli_module

    model, refiner = str(tiny_pipeline_dirs["sd1"]), str(sd1_refiner / "final")
    result = CliRunner().invoke(cli, ["refine", "two red boats at sunset", "--refiner", refiner, "--model", model,
                                      "--rounds", 2, "--pick", "first"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert result.output.count("[1]") == 2 and "refined:" in result.output
    # no terminal (a pipe, CI): the first candidate, said so, instead of click's "Aborted!"
    result = CliRunner().invoke(cli, ["refine", "two red boats at sunset", "--refiner", refiner, "--model", model,
                                      "--rounds", 1], catch_exceptions=False)
    assert result.exit_code == 0 and "not a TTY" in result.output and "refined:" in result.output
    monkeypatch.setattr(cli_module, "_stdin_is_tty", lambda: True)
    result = CliRunner().invoke(cli, ["refine", "two red boats at sunset", "--refiner", refiner, "--model", model,
                                      "--rounds", 1], input="2\n", catch_exceptions=False)
    assert result.exit_code == 0 and "pick" in result.output
    out = tmp_path / "gen"
    result = CliRunner().invoke(cli, ["generate", "two red boats at sunset", "--model", model, "--refine",
                                      "--lift", f"refiner={refiner}", "--num_inference_steps", 2, "--output_dir", out],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    sidecar = json.loads(next(out.glob("*.json")).read_text())
    assert sidecar["prompt"] == "two red boats at sunset" and sidecar["lifts"][0]["name"] == "refiner"
    if sidecar["prompt_used"] != sidecar["prompt"]:
        assert repr(sidecar["prompt_used"]) in result.output


def test_text_only_variant_on_another_encoder(tmp_path, tiny_pipeline_dirs, tiny_bundle_dir):
    from promptlift.methods.sur_adapter.llm import default_teacher

    fine = [f"{c} {k}, {s}, highly detailed, soft lighting, sharp focus, warm colors, trending on artstation" for c in ("red", "blue", "green", "white")
            for k in ("boat", "ball", "tree", "house", "flower") for s in ("sunset", "at night", "on the beach")]
    (tmp_path / "fine.txt").write_text("\n".join(fine * 3))
    result = run_refiner(tiny_pipeline_dirs["sd1"], tmp_path / "fine.txt", tmp_path / "run", tiny_bundle_dir,
                         "--coarse_column", "", "--text_encoder", default_teacher(), "--fine_column", "prompt")
    assert result.exit_code == 0, result.output
    evals = [json.loads(x)["eval"] for x in (tmp_path / "run" / "logs.jsonl").read_text().splitlines() if '"eval"' in x]
    assert "heldout_ce" in evals[-1] and len(evals[-1]["samples"]) == 4
    refiner = Refiner.load(tmp_path / "run" / "final")
    assert isinstance(refiner.one_shot(["red boat"], max_new_tokens=5)[0], str)
    with pytest.raises(ValueError, match="plug-and-play"):
        refiner.embeds(["red boat"])


def test_bad_config_is_named(tmp_path):
    with pytest.raises(ValueError, match="train_data"):
        RefinerConfig()
    with pytest.raises(ValueError, match="ce_weight"):
        RefinerConfig(train_data="x", ce_weight=0)
    with pytest.raises(ValueError, match="does not exist"):
        load_lifts([f"refiner={tmp_path / 'nope'}"])
    with pytest.raises(ValueError, match="holds no refiner"):
        load_pipeline(None, lifts=load_lifts([f"refiner={tmp_path}"]))


def test_the_bundled_refiner_rewrites_a_narrative_prompt_in_the_words_the_model_knows():
    """The bundle's SmolLM2 refiner: a narrative prompt's content in literal words, then the scenery and looks of the
    complex prompts it learnt; a literal prompt's content is kept."""
    from promptlift.methods import METHODS
    from promptlift.methods.refiner.lm import LMRefiner

    refiner = Refiner.load(METHODS["refiner"].bundle_weights, load_pipeline(None))
    assert isinstance(refiner, LMRefiner) and not refiner.extend
    refined = refiner.one_shot(["two red boats at sunset", "four parcels wrapped in violet paper lying in fresh powder"],
                               max_new_tokens=32)
    assert refined[0].startswith("two red boats, sunset, ") and "highly detailed" in refined[0]
    assert refined[1].startswith("four purple boxes, snow")
