"""One contract for every reward, on tiny random weights of its real architecture, loaded the real way."""

import pytest
import torch
from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor

from promptlift.rewards import REWARDS, MissingWeightsError, Reward, check_rewards, load_reward, register_reward
from promptlift.rewards.clip import AestheticMLP
from promptlift.tiny import byte_level_clip_tokenizer

PROMPTS = ["two red boats at sunset", "a lone tree in the snow", "three blue balls on the beach"]


def _tiny_clip_folder(root, projection_dim=16):
    torch.manual_seed(0)
    tokenizer = byte_level_clip_tokenizer()
    config = CLIPConfig(
        text_config=dict(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=37, num_hidden_layers=2,
                         num_attention_heads=4, max_position_embeddings=77, bos_token_id=0, eos_token_id=1,
                         pad_token_id=1),
        vision_config=dict(image_size=32, patch_size=8, hidden_size=32, intermediate_size=37, num_hidden_layers=2,
                           num_attention_heads=4),
        projection_dim=projection_dim,
    )
    CLIPModel(config).save_pretrained(root)
    image_processor = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(root)
    return str(root)


@pytest.fixture(scope="module")
def reward_options(tmp_path_factory, tiny_bundle_dir):
    """Options that point every registered reward at tiny local weights."""
    root = tmp_path_factory.mktemp("rewards")
    clip_dir = _tiny_clip_folder(root / "clip")
    torch.manual_seed(1)
    torch.save(AestheticMLP(16).state_dict(), root / "aesthetic.pth")
    bundle = str(tiny_bundle_dir)
    return {
        "clip-score": {"model": clip_dir},
        "pickscore": {"model": clip_dir, "processor": clip_dir},
        "laion-aesthetic": {"weights": str(root / "aesthetic.pth"), "clip": clip_dir},
        "world-aesthetic": {"bundle_dir": bundle},
        "world-aesthetic-reward": {"bundle_dir": bundle},
        "world-attributes": {"bundle_dir": bundle},
        "world-clip": {"bundle_dir": bundle},
    }


def test_every_registered_reward_has_a_contract_case(reward_options):
    assert set(reward_options) == set(REWARDS)


@pytest.mark.parametrize("name", sorted(REWARDS))
def test_reward_contract(name, reward_options):
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
