"""The world's judges: the attribute judge and the two aesthetic predictors, the world CLIP, the bundle folder that
holds them, and semantic accuracy against the world's ground truth."""

from .bundle import BUNDLE_DIR, attribute_accuracy, build_tokenizer, load_judge, load_tokenizer_from
from .models import JUDGE_CLASSES, AestheticResNet, AestheticVGG, AttributeJudge

__all__ = ["BUNDLE_DIR", "JUDGE_CLASSES", "AestheticResNet", "AestheticVGG", "AttributeJudge", "attribute_accuracy",
           "build_tokenizer", "load_judge", "load_tokenizer_from"]
