"""One reward zoo: `reward(images (B, 3, H, W) in [0, 1], prompts) -> (B,)`, a validating registry, and a
check that lists every missing weight before a run starts.
"""

from .base import REWARDS, MissingWeightsError, Reward, RewardSpec, WeightSource, check_rewards, load_reward, parse_reward_options, register_reward, reward_spec, reward_specs
from . import clip, compbench, following, iqa, preference, questions  # noqa: F401  (register the built-in rewards; plug-ins register theirs)

__all__ = ["REWARDS", "MissingWeightsError", "Reward", "RewardSpec", "WeightSource", "check_rewards", "load_reward",
           "parse_reward_options", "register_reward", "reward_spec", "reward_specs"]
