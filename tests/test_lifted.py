"""The lifted stack: each pair of lifts composes as the sum of its changes to the base model's embedding, the order
that would lose a change is refused, and `--lifted` applies the whole stack and records it."""

import json

import pytest
import torch
from click.testing import CliRunner

from promptlift.cli import cli
from promptlift.judges import BUNDLE_DIR
from promptlift.pipeline.stack import LIFTED_STACK, lifted_options, lifted_specs
from promptlift.methods.sur_adapter.lift import SURAdapterLift
from promptlift.methods.sur_adapter.model import SURAdapter
from promptlift.methods.textcraftor.lift import TextCraftorLift
from promptlift.pipeline import encode_prompts, load_lifts, load_pipeline

PROMPTS = ["a red ball", "two boats at sunset"]


@pytest.fixture(scope="module")
def parts(tmp_path_factory, tiny_pipeline_dirs):
    """(pipeline folder, a tuned text encoder folder, a SUR-adapter folder) on the tiny SD1 pipeline."""
    root = tmp_path_factory.mktemp("lifted")
    pipe = load_pipeline(tiny_pipeline_dirs["sd1"])
    torch.manual_seed(0)
    with torch.no_grad():
        for p in pipe.text_encoder.parameters():
            p.add_(0.05 * torch.randn_like(p))
    pipe.text_encoder.save_pretrained(root / "tc" / "text_encoder")
    (root / "tc" / "textcraftor.json").write_text(json.dumps({"switch_step": 0}))
    adapter = SURAdapter(dim=32, llm_dim=12, num_heads=8)
    with torch.no_grad():
        adapter.out.weight.normal_(0, 0.5)
    adapter.save_pretrained(root / "sur")
    return tiny_pipeline_dirs["sd1"], root / "tc", root / "sur"


def embeds(model, lifts):
    return encode_prompts(load_pipeline(model, lifts=lifts), PROMPTS, lifts=lifts)


def tc(path, switch_step=0, alpha=1.0):
    return TextCraftorLift("textcraftor", path, alpha=alpha, switch_step=switch_step)


def test_sur_adapter_and_textcraftor_add_their_changes_in_either_order(parts):
    model, tc_dir, sur_dir = parts
    base = embeds(model, [])
    tuned = embeds(model, [tc(tc_dir)])
    adapted = embeds(model, [SURAdapterLift("sur-adapter", sur_dir)])
    expected = adapted.prompt_embeds + (tuned.prompt_embeds - base.prompt_embeds)
    assert not torch.allclose(tuned.prompt_embeds, base.prompt_embeds)
    assert not torch.allclose(adapted.prompt_embeds, base.prompt_embeds)
    for lifts in ([SURAdapterLift("sur-adapter", sur_dir), tc(tc_dir)], [tc(tc_dir), SURAdapterLift("sur-adapter", sur_dir)]):
        both = embeds(model, lifts)
        torch.testing.assert_close(both.prompt_embeds, expected)
        torch.testing.assert_close(both.negative_prompt_embeds, tuned.negative_prompt_embeds)
    # alpha scales TextCraftor's change only, not the adapter's
    half = embeds(model, [SURAdapterLift("sur-adapter", sur_dir), tc(tc_dir, alpha=0.5)])
    torch.testing.assert_close(half.prompt_embeds, adapted.prompt_embeds + 0.5 * (tuned.prompt_embeds - base.prompt_embeds))


def test_hybrid_schedule_keeps_the_adapter_before_and_after_the_switch(parts):
    model, tc_dir, sur_dir = parts
    base, tuned = embeds(model, []), embeds(model, [tc(tc_dir)])
    adapted = embeds(model, [SURAdapterLift("sur-adapter", sur_dir)])
    hybrid = tc(tc_dir, switch_step=2)
    now = embeds(model, [SURAdapterLift("sur-adapter", sur_dir), hybrid])
    torch.testing.assert_close(now.prompt_embeds, adapted.prompt_embeds)
    later = hybrid._later["prompt_embeds"]
    torch.testing.assert_close(later, torch.cat([tuned.negative_prompt_embeds,
                                                 adapted.prompt_embeds + tuned.prompt_embeds - base.prompt_embeds]))
    with pytest.raises(ValueError, match="list 'textcraftor' after 'sur-adapter'"):
        embeds(model, [tc(tc_dir, switch_step=2), SURAdapterLift("sur-adapter", sur_dir)])


def test_the_adapter_reads_the_users_words_and_keeps_the_rewrites_phrases(parts):
    """A refiner's rewrite adds its change (`base(rewritten) - base(user's)`) to the adapter's reading of the user's
    prompt; the adapter never reads the rewrite, unless told to (`reads="rewrite"`: then it reads nothing else)."""
    model, tc_dir, sur_dir = parts
    pipe = load_pipeline(model)
    rewritten = [f"{p}, highly detailed, soft lighting" for p in PROMPTS]
    sur = SURAdapterLift("sur-adapter", sur_dir)
    adapted = encode_prompts(pipe, PROMPTS, lifts=[sur])
    plain, plain_rewritten = encode_prompts(pipe, PROMPTS), encode_prompts(pipe, rewritten)
    both = encode_prompts(pipe, rewritten, lifts=[sur], user_prompts=PROMPTS)
    torch.testing.assert_close(both.prompt_embeds, adapted.prompt_embeds + plain_rewritten.prompt_embeds - plain.prompt_embeds)
    seen = []
    sur._adapt = lambda p, x, prompts: seen.extend(prompts) or (x, torch.zeros(x.shape[:2], dtype=torch.bool))
    encode_prompts(pipe, rewritten, lifts=[sur], user_prompts=PROMPTS)
    assert seen == PROMPTS
    with pytest.raises(ValueError, match="1 user prompts for 2"):
        encode_prompts(pipe, rewritten, lifts=[sur], user_prompts=PROMPTS[:1])

    reader = SURAdapterLift("sur-adapter", sur_dir, reads="rewrite")
    torch.testing.assert_close(encode_prompts(pipe, rewritten, lifts=[reader], user_prompts=PROMPTS).prompt_embeds,
                               encode_prompts(pipe, rewritten, lifts=[reader]).prompt_embeds)
    seen.clear()
    reader._adapt = sur._adapt
    encode_prompts(pipe, rewritten, lifts=[reader], user_prompts=PROMPTS)
    assert seen == rewritten
    with pytest.raises(ValueError, match="must be 'user' or 'rewrite'"):
        SURAdapterLift("sur-adapter", sur_dir, reads="both")


def test_lifted_specs_keep_the_stack_order_and_take_given_weights():
    assert lifted_specs() == list(LIFTED_STACK)  # bare: each lift's default weights (the bundle's)
    specs = lifted_specs(["textcraftor=runs/tc/best", "keywords"])
    assert specs == ["refiner", "quality-tuning", "sur-adapter", "textcraftor=runs/tc/best", "keywords"]
    assert lifted_specs(["sur-adapter"])[2] == "sur-adapter"
    assert lifted_specs(["sur-adapter=runs/sur/best"])[2] == "sur-adapter=runs/sur/best"
    with pytest.raises(ValueError, match="unknown lift 'nope'"):
        lifted_specs(["nope=x"])


def test_generate_lifted_applies_the_bundle_stack_and_records_it(tmp_path):
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["generate", "--lifted", "a lone white tree in the snow", "--num_inference_steps",
                                      "2", "--output_dir", str(out)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    sidecar = json.loads(next(out.glob("*.json")).read_text())
    assert [lift["name"] for lift in sidecar["lifts"]] == list(LIFTED_STACK)
    assert all(lift["path"] and "bundle" in lift["path"] for lift in sidecar["lifts"])
    assert sidecar["prompt_used"].startswith("one white tree, ")  # the refiner rewrote it in the words the model knows
    lifts = {lift["name"]: lift for lift in sidecar["lifts"]}
    assert lifts["textcraftor"]["switch_step"] == 0 and lifts["textcraftor"]["alpha"] == 1.0  # LIFTED_OPTIONS
    assert lifts["quality-tuning"]["scale"] == 2.5 and lifts["sur-adapter"]["gate"] == "0.4:0.5"  # and lift.json
    assert lifts["sur-adapter"]["path"] == str(BUNDLE_DIR / "sur-adapter") and lifts["sur-adapter"]["reads"] == "rewrite"
    assert lifts["refiner"]["max_new_tokens"] == 32  # its lift_config.json
    assert lifted_options(["textcraftor.switch_step=3"])[-1] == "textcraftor.switch_step=3"  # the user's option wins
    assert lifted_options(lifted_options()) == lifted_options()


def test_bundle_lifts_compose_on_the_embedded_model():
    lifts = load_lifts(lifted_specs())
    pipe = load_pipeline(None, lifts=lifts)
    e = encode_prompts(pipe, PROMPTS, lifts=lifts)
    assert torch.isfinite(e.prompt_embeds).all() and e.prompt_embeds.shape[0] == len(PROMPTS)


def test_compare_base_writes_the_base_images_and_a_side_by_side_sheet(tmp_path, tiny_pipeline_dirs):
    from PIL import Image

    out = tmp_path / "demo"
    args = ["generate", "--model", str(tiny_pipeline_dirs["sd1"]), "--lift", "keywords", "--compare_base", "a red ball",
            "two boats", "--num_images_per_prompt", "2", "--num_inference_steps", "2", "--output_dir", str(out)]
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    lifted = sorted(out.glob("*.json"))
    base = sorted((out / "base").glob("*.json"))
    assert [p.name for p in base] == [p.name for p in lifted] and len(base) == 4
    for b, a in zip(base, lifted):
        b, a = json.loads(b.read_text()), json.loads(a.read_text())
        assert (b["prompt"], b["seed"], b["lifts"]) == (a["prompt"], a["seed"], [])
        assert a["prompt_used"].endswith("soft lighting") and b["prompt_used"] == b["prompt"]
    sheet, side = Image.open(out / "sheet.png"), 3 * Image.open(next((out / "base").glob("*.png"))).height
    assert sheet.height > 4 * side and sheet.width > 2 * side
    refused = CliRunner().invoke(cli, ["generate", "--compare_base", "x", "--output_dir", str(tmp_path / "no")])
    assert refused.exit_code != 0 and "no lift is given" in refused.output


def test_the_methods_registry_is_validated_and_read_by_the_cli_and_the_lift_registry():
    from helpers import run_cli

    from promptlift.methods import METHODS, register_method
    from promptlift.methods.quality_tuning import QualityTuningConfig
    from promptlift.pipeline import LIFTS

    assert set(METHODS) == set(LIFTED_STACK)
    for name, spec in METHODS.items():
        assert LIFTS[name].default_path() == spec.bundle_weights is not None  # the bundle ships every method's weights
    listed = run_cli("train", "--help")
    assert listed.exit_code == 0 and all(name in listed.output for name in METHODS)

    def lift(name, path):
        return None

    with pytest.raises(TypeError, match="MethodTrainConfig dataclass"):
        register_method("new-method", config=dict, trainer="a:b", help="h", lift_help="h")(lift)
    with pytest.raises(ValueError, match="'module:function'"):
        register_method("new-method", config=QualityTuningConfig, trainer="nocolon", help="h", lift_help="h")(lift)
    with pytest.raises(ValueError, match="already registered"):
        register_method("refiner", config=QualityTuningConfig, trainer="a:b", help="h", lift_help="h")(lift)
    assert "new-method" not in METHODS and "new-method" not in LIFTS


def test_rewrite_scale_scales_the_rewrites_change_only(parts):
    """`rewrite_scale` weighs the refiner's change added to the adapter's (0: the rewrite changes nothing the adapter
    reads), and leaves a tuned encoder's change whole, whichever lift comes first."""
    model, tc_dir, sur_dir = parts
    rewritten = [f"{p}, highly detailed, soft lighting" for p in PROMPTS]
    pipe = load_pipeline(model)
    plain, plain_rewritten = encode_prompts(pipe, PROMPTS), encode_prompts(pipe, rewritten)
    adapted = encode_prompts(pipe, PROMPTS, lifts=[SURAdapterLift("sur-adapter", sur_dir)])
    tuned_pipe = load_pipeline(model, lifts=[tc(tc_dir)])
    tuned_rewritten = encode_prompts(tuned_pipe, rewritten, lifts=[tc(tc_dir)])
    for scale in (0.0, 0.5):
        sur = SURAdapterLift("sur-adapter", sur_dir, rewrite_scale=scale)
        alone = encode_prompts(pipe, rewritten, lifts=[sur], user_prompts=PROMPTS)
        torch.testing.assert_close(alone.prompt_embeds, adapted.prompt_embeds + scale * (
            plain_rewritten.prompt_embeds - plain.prompt_embeds))
        lifts = [tc(tc_dir), sur]
        both = encode_prompts(load_pipeline(model, lifts=lifts), rewritten, lifts=lifts, user_prompts=PROMPTS)
        torch.testing.assert_close(both.prompt_embeds, alone.prompt_embeds + tuned_rewritten.prompt_embeds
                                   - plain_rewritten.prompt_embeds)
        assert sur.describe()["rewrite_scale"] == scale
    with pytest.raises(ValueError, match="with reads='rewrite' leave it at 1"):
        SURAdapterLift("sur-adapter", sur_dir, reads="rewrite", rewrite_scale=0.5)


def test_the_gate_weighs_the_adapters_change_by_how_much_it_changes_the_prompt(parts, tmp_path):
    """`gate=LOW:HIGH`: a prompt whose relative change is at most LOW keeps the base embedding, at least HIGH gets the
    adapter's in full, linear between; the folder's lift.json sets the default (and that of `reads`); a bad gate is
    named."""
    import shutil

    from promptlift.methods.sur_adapter.lift import relative_change
    from promptlift.pipeline import prompt_padding_mask

    model, _, sur_dir = parts
    pipe = load_pipeline(model)
    base = encode_prompts(pipe, PROMPTS).prompt_embeds
    adapted = encode_prompts(pipe, PROMPTS, lifts=[SURAdapterLift("sur-adapter", sur_dir)]).prompt_embeds
    change = relative_change(adapted, base, prompt_padding_mask(pipe.tokenizer, PROMPTS, base.shape[1]))
    assert (change > 0).all()
    low, high = 0.0, 2 * change[0].item()
    expected = [base + w.view(-1, 1, 1) * (adapted - base) for w in (torch.zeros(2), torch.ones(2),
                                                                     (change / high).clamp(max=1))]
    for gate, want in zip((f"{change.max().item() * 1.01}:{change.max().item() * 2}", f"0:{change.min().item() / 2}",
                           f"{low}:{high}"), expected):
        sur = SURAdapterLift("sur-adapter", sur_dir, gate=gate)
        torch.testing.assert_close(encode_prompts(pipe, PROMPTS, lifts=[sur]).prompt_embeds, want)
    assert torch.allclose(sur.last_gates[0], torch.tensor(0.5))
    folder = tmp_path / "gated"
    shutil.copytree(sur_dir, folder)
    (folder / "lift.json").write_text(json.dumps({"gate": f"{low}:{high}"}))
    (lift,) = load_lifts([f"sur-adapter={folder}"])
    torch.testing.assert_close(encode_prompts(pipe, PROMPTS, lifts=[lift]).prompt_embeds, expected[2])
    assert lift.describe()["gate"] == "%g:%g" % (low, high)
    (lift,) = load_lifts([f"sur-adapter={folder}"], ["sur-adapter.gate=none"])
    torch.testing.assert_close(encode_prompts(pipe, PROMPTS, lifts=[lift]).prompt_embeds, adapted)
    # lift.json also says which prompt an adapter reads behind a refiner; an option of the same key wins
    assert lift.reads == "user"
    (folder / "lift.json").write_text(json.dumps({"gate": f"{low}:{high}", "reads": "rewrite"}))
    assert [lift.reads for lift in load_lifts([f"sur-adapter={folder}"])] == ["rewrite"]
    assert [lift.reads for lift in load_lifts([f"sur-adapter={folder}"], ["sur-adapter.reads=user"])] == ["user"]
    for bad in ("0.6:0.45", "0.5", "a:b", "-1:1"):
        with pytest.raises(ValueError, match="must be LOW:HIGH"):
            SURAdapterLift("sur-adapter", sur_dir, gate=bad)
    with pytest.raises(ValueError, match="gate_columns"):  # an adapter trained without a gate head has none to learn
        SURAdapterLift("sur-adapter", sur_dir, gate="learnt")
