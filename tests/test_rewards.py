"""One contract for every reward, on tiny random weights of its real architecture, loaded the real way."""

import dataclasses
import importlib.util
import json

import pytest
import torch
from transformers import (BlipTextConfig, BlipTextModel, BlipVisionConfig, BlipVisionModel, CLIPConfig,
                          CLIPImageProcessor, CLIPModel, CLIPProcessor)

from promptlift.rewards import (REWARDS, MissingWeightsError, Reward, check_rewards, load_reward, register_reward,
                                reward_specs)
from promptlift.rewards.clip import AestheticMLP
from promptlift.tiny import byte_level_clip_tokenizer

from helpers import save_tiny_blip_vqa, save_tiny_owl_and_clip

PROMPTS = ["two red boats at sunset", "a lone tree in the snow", "three blue balls on the beach"]


def _tiny_clip_folder(root, projection_dim=16, width=32, heads=4, act="quick_gelu"):
    torch.manual_seed(0)
    tokenizer = byte_level_clip_tokenizer()
    config = CLIPConfig(
        text_config=dict(vocab_size=len(tokenizer), hidden_size=width, intermediate_size=37, num_hidden_layers=2,
                         num_attention_heads=heads, max_position_embeddings=77, bos_token_id=0, eos_token_id=1,
                         pad_token_id=1, hidden_act=act),
        vision_config=dict(image_size=32, patch_size=8, hidden_size=width, intermediate_size=37, num_hidden_layers=2,
                           num_attention_heads=heads, hidden_act=act),
        projection_dim=projection_dim,
    )
    CLIPModel(config).save_pretrained(root)
    image_processor = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(root)
    return str(root)


def _to_open_clip(model: CLIPModel) -> dict:
    """The inverse of open_clip_to_transformers: open_clip's key layout, as in an HPSv2 checkpoint."""
    sd, out = model.state_dict(), {}
    for tower, prefix in (("text_model", ""), ("vision_model", "visual.")):
        n = getattr(model.config, f"{tower.split('_')[0]}_config").num_hidden_layers
        for i in range(n):
            hf, oc = f"{tower}.encoder.layers.{i}", f"{prefix}transformer.resblocks.{i}"
            for kind in ("weight", "bias"):
                out[f"{oc}.attn.in_proj_{kind}"] = torch.cat([sd[f"{hf}.self_attn.{p}_proj.{kind}"] for p in "qkv"])
                for a, b in (("ln_1", "layer_norm1"), ("ln_2", "layer_norm2"), ("mlp.c_fc", "mlp.fc1"),
                             ("mlp.c_proj", "mlp.fc2"), ("attn.out_proj", "self_attn.out_proj")):
                    out[f"{oc}.{a}.{kind}"] = sd[f"{hf}.{b}.{kind}"]
    for kind in ("weight", "bias"):
        out[f"ln_final.{kind}"] = sd[f"text_model.final_layer_norm.{kind}"]
        out[f"visual.ln_pre.{kind}"] = sd[f"vision_model.pre_layrnorm.{kind}"]
        out[f"visual.ln_post.{kind}"] = sd[f"vision_model.post_layernorm.{kind}"]
    out.update({"token_embedding.weight": sd["text_model.embeddings.token_embedding.weight"],
                "positional_embedding": sd["text_model.embeddings.position_embedding.weight"],
                "visual.conv1.weight": sd["vision_model.embeddings.patch_embedding.weight"],
                "visual.class_embedding": sd["vision_model.embeddings.class_embedding"],
                "visual.positional_embedding": sd["vision_model.embeddings.position_embedding.weight"],
                "text_projection": sd["text_projection.weight"].t(), "visual.proj": sd["visual_projection.weight"].t(),
                "logit_scale": sd["logit_scale"]})
    return {"module." + k: v for k, v in out.items()}


def _tiny_imagereward_folder(root):
    """ImageReward.pt in the original key layout (blip.visual_encoder / blip.text_encoder / mlp) + med_config."""
    from promptlift.rewards.clip import AestheticMLP as MLP

    torch.manual_seed(2)
    root.mkdir()
    vision = BlipVisionModel(BlipVisionConfig(hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                                              num_attention_heads=1, image_size=32, patch_size=8, layer_norm_eps=1e-6))
    med = {"vocab_size": 30522, "hidden_size": 32, "intermediate_size": 48, "num_hidden_layers": 2,
           "num_attention_heads": 4, "max_position_embeddings": 64, "encoder_width": 64}
    text = BlipTextModel(BlipTextConfig(vocab_size=30522, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                                        num_attention_heads=4, max_position_embeddings=64, encoder_hidden_size=64),
                         add_pooling_layer=False)
    sd = {}
    for k, v in vision.state_dict().items():
        k = {"embeddings.class_embedding": "cls_token", "embeddings.position_embedding": "pos_embed",
             "embeddings.patch_embedding.weight": "patch_embed.proj.weight",
             "embeddings.patch_embedding.bias": "patch_embed.proj.bias",
             "post_layernorm.weight": "norm.weight", "post_layernorm.bias": "norm.bias"}.get(k, k)
        k = (k.replace("encoder.layers.", "blocks.").replace("layer_norm", "norm").replace("self_attn.projection", "attn.proj")
             .replace("self_attn.qkv", "attn.qkv"))
        sd["blip.visual_encoder." + k] = v
    sd.update({"blip.text_encoder." + k: v for k, v in text.state_dict().items()})
    sd.update({"mlp." + k: v for k, v in MLP(32).state_dict().items()})
    torch.save({"state_dict": sd}, root / "ImageReward.pt")
    (root / "med_config.json").write_text(json.dumps(med))
    return str(root), (vision, text)


def _bert_tokenizer_folder(root):
    from promptlift.judges import build_tokenizer

    build_tokenizer(model_max_length=64).save_pretrained(root)  # bert-base-uncased's WordPiece vocabulary
    return str(root)


@pytest.fixture(scope="module")
def reward_options(tmp_path_factory, tiny_bundle_dir):
    """Options that point every registered reward at tiny local weights."""
    root = tmp_path_factory.mktemp("rewards")
    clip_dir = _tiny_clip_folder(root / "clip")
    torch.manual_seed(1)
    torch.save(AestheticMLP(16).state_dict(), root / "aesthetic.pth")
    hps_clip = _tiny_clip_folder(root / "hps-clip", width=128, heads=2, act="gelu")  # open_clip's head width 64, GELU
    torch.save({"state_dict": _to_open_clip(CLIPModel.from_pretrained(hps_clip))}, root / "hps.pt")
    imagereward_dir, _ = _tiny_imagereward_folder(root / "imagereward")
    bundle = str(tiny_bundle_dir)
    following = save_tiny_owl_and_clip(root / "following")
    metadata = root / "geneval_metadata.jsonl"  # PROMPTS in GenEval's format
    metadata.write_text("".join(json.dumps({"tag": "counting", "prompt": p, "include": [{"class": c, "count": n}]}) + "\n"
                                for p, c, n in zip(PROMPTS, ("boat", "tree", "ball"), (2, 1, 3))))
    compbench = root / "t2i-compbench"  # PROMPTS as T2I-CompBench's colour, spatial and non-spatial prompts
    compbench.mkdir()
    for category, prompt in zip(("color", "spatial", "non_spatial"), PROMPTS):
        (compbench / f"{category}_val.txt").write_text(prompt + "\n")
    return {
        "geneval": {"metadata": str(metadata), "detector": str(following / "owl"), "colors": str(following / "clip"),
                    "threshold": 0.0},
        "vqa": {"geneval": str(metadata), "model": str(save_tiny_blip_vqa(root / "blip-vqa"))},
        "vqascore": {"model": str(root / "blip-vqa")},
        "t2i-compbench": {"prompts": str(compbench), "subset": "color,spatial,non_spatial", "vqa": str(root / "blip-vqa"),
                          "detector": str(following / "owl"), "clip": str(following / "clip"), "threshold": 0.0,
                          "split_sentences": True},
        "world-geneval": {"bundle_dir": bundle},
        "world-vqa": {"bundle_dir": bundle},
        "hpsv2": {"checkpoint": str(root / "hps.pt"), "processor": hps_clip},
        "imagereward": {"checkpoint": imagereward_dir, "tokenizer": _bert_tokenizer_folder(root / "bert")},
        **{name: {} for name, spec in REWARDS.items() if spec.requires == "pyiqa"},
        "clip-score": {"model": clip_dir},
        "pickscore": {"model": clip_dir, "processor": clip_dir},
        "laion-aesthetic": {"weights": str(root / "aesthetic.pth"), "clip": clip_dir},
        "world-aesthetic": {"bundle_dir": bundle},
        "world-aesthetic-reward": {"bundle_dir": bundle},
        "world-attributes": {"bundle_dir": bundle},
        "world-clip": {"bundle_dir": bundle},
    }


def test_every_registered_reward_has_a_contract_case(reward_options):
    assert set(reward_options) == {spec.name for spec in reward_specs()}  # the plug-ins' included


@pytest.mark.parametrize("name", sorted(spec.name for spec in reward_specs()))  # plug-ins loaded
def test_reward_contract(name, reward_options):
    if REWARDS[name].requires and importlib.util.find_spec(REWARDS[name].requires) is None:
        pytest.skip(f"optional plug-in {REWARDS[name].requires} not installed")
    reward = load_reward(name, **reward_options[name])
    assert isinstance(reward, Reward)
    assert all(not p.requires_grad for p in reward.parameters()), "reward models are frozen"
    torch.manual_seed(0)
    images = torch.rand(3, 3, 48, 48, requires_grad=True)
    scores = reward(images, PROMPTS)
    # shape, dtype, range
    assert scores.shape == (3,) and scores.dtype == torch.float32 and torch.isfinite(scores).all()
    lo, hi = reward.score_range
    assert (scores >= lo).all() and (scores <= hi).all()
    # differentiable in the images; no gradient reaches the reward model
    if reward.differentiable:
        scores.sum().backward()
        assert images.grad is not None and images.grad.abs().sum() > 0
        assert all(p.grad is None for p in reward.parameters())
    # deterministic, and each image's score does not depend on its batch-mates
    with torch.no_grad():
        again = reward(images.detach(), PROMPTS)
        alone = reward(images.detach()[1:2], PROMPTS[1:2])
    torch.testing.assert_close(scores.detach(), again)
    torch.testing.assert_close(scores.detach()[1:2], alone, rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="one prompt per image"):
        reward(images.detach(), PROMPTS[:2])


def test_long_prompts_are_encoded_whole(reward_options):
    reward = load_reward("clip-score", **reward_options["clip-score"])
    images = torch.rand(2, 3, 32, 32)
    head = "a red ball " * 20  # > 77 byte-level tokens
    with torch.no_grad():
        a, b = reward(images, [head + "at night", head + "on the beach"])
    assert torch.isfinite(a) and not torch.isclose(a, b), "the words past the limit still count"


def test_pickscore_paper_protocol_is_the_batch_mean(reward_options):
    per_pair = load_reward("pickscore", **reward_options["pickscore"])
    paper = load_reward("pickscore", paper_protocol=True, **reward_options["pickscore"])
    images = torch.rand(3, 3, 32, 32)
    with torch.no_grad():
        img, txt = per_pair.image_features(images), per_pair.text_features(PROMPTS)
        matrix = per_pair.model.logit_scale.exp() * txt @ img.t()
        torch.testing.assert_close(paper(images, PROMPTS), matrix.mean(0))
        torch.testing.assert_close(per_pair(images, PROMPTS), matrix.diagonal())


def test_hpsv2_matches_the_clip_it_was_converted_from(reward_options):
    """The open_clip -> transformers mapping reproduces the original model's features exactly."""
    hps = load_reward("hpsv2", **reward_options["hpsv2"])
    original = reward_options["hpsv2"]["processor"]  # the folder the open_clip checkpoint was exported from
    torch.testing.assert_close(hps.model.state_dict(), CLIPModel.from_pretrained(original).state_dict())
    images = torch.rand(3, 3, 32, 32)
    with torch.no_grad():
        clip_score = load_reward("clip-score", model=original)(images, PROMPTS)
        torch.testing.assert_close(hps(images, PROMPTS), clip_score / 100)


def test_imagereward_loads_the_original_layout(reward_options, tmp_path):
    _, (vision, text) = _tiny_imagereward_folder(tmp_path / "again")
    reward = load_reward("imagereward", **reward_options["imagereward"])
    torch.testing.assert_close(reward.vision.state_dict(), vision.state_dict())
    torch.testing.assert_close(reward.text.state_dict(), text.state_dict())
    image = torch.rand(1, 3, 32, 32).expand(2, -1, -1, -1)
    with torch.no_grad():
        a, b = reward(image, ["a red ball", "a red ball at night"])
    assert not torch.isclose(a, b), "the [CLS] feature reads the whole prompt (bidirectional, not causal)"


def test_missing_weights_are_listed_all_at_once(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(MissingWeightsError) as e:
        check_rewards(["laion-aesthetic", "pickscore", "world-clip"],
                      {"laion-aesthetic": {"weights": str(tmp_path / "none.pth"), "clip": "nobody/clip"},
                       "pickscore": {"model": "nobody/pick", "processor": "nobody/proc"},
                       "world-clip": {"bundle_dir": str(tmp_path / "nobundle")}})
    message = str(e.value)
    for expected in ("none.pth", "nobody/clip", "nobody/pick", "nobody/proc", "nobundle", "download https://"):
        assert expected in message
    with pytest.raises(ValueError, match="unknown reward 'nope'; registered rewards: clip-score"):
        check_rewards(["nope"])


def test_a_missing_optional_package_is_named_with_its_install_line(monkeypatch):
    monkeypatch.setitem(REWARDS, "needs-pkg", dataclasses.replace(
        REWARDS["clip-score"], name="needs-pkg", requires="promptlift_no_such_package", install="pip install it"))
    with pytest.raises(MissingWeightsError, match="`promptlift_no_such_package` is not installed: pip install it"):
        check_rewards(["needs-pkg"])


@pytest.mark.parametrize("name, kwargs, error", [
    ("Bad", {"help": "x"}, "lower-case words"),
    ("clip-score", {"help": "x"}, "already registered"),
    ("fine", {"help": ""}, "one-line `help`"),
    ("fine", {"help": "x", "requires": "pkg"}, "both `requires` and `install`"),
])
def test_register_reward_validates(name, kwargs, error):
    with pytest.raises(ValueError, match=error):
        register_reward(name, **kwargs)(Reward)
    assert "fine" not in REWARDS
