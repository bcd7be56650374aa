"""No-reference image-quality metrics through the optional pyiqa plug-in (the UF-FGTG metrics).

pyiqa (chaofengc/IQA-PyTorch) is licensed for non-commercial use only, so promptlift never depends on it:
`pip install pyiqa` (it also needs torchvision) makes these rewards available. pyiqa fetches its own
weights on first use into its cache (~/.cache/torch/hub/pyiqa); offline, put them there beforehand.
"""

from __future__ import annotations

from typing import Sequence

import torch

from .base import Reward, register_reward

__all__ = ["IQAMetric"]

INSTALL = "pip install pyiqa  (non-commercial licence; also needs torchvision)"


class IQAMetric(Reward):
    """A pyiqa metric as a reward: prompts are ignored (no-reference), higher is better for every metric here."""

    def __init__(self, metric):
        super().__init__()
        self.metric = metric
        self.score_range = tuple(float(v) for v in getattr(metric, "score_range", (float("-inf"), float("inf"))))

    def forward(self, images: torch.Tensor, prompts: Sequence[str]) -> torch.Tensor:
        self.check_inputs(images, prompts)
        return self.metric(images).reshape(-1).float()  # (B,)


def _register(name: str, metric: str, what: str) -> None:
    def factory(device: str = "cpu") -> IQAMetric:
        import pyiqa

        return IQAMetric(pyiqa.create_metric(metric, as_loss=True, device=device))

    factory.__name__ = f"_{metric}"
    register_reward(name, help=f"{what} (pyiqa `{metric}`; optional plug-in, non-commercial licence).",
                    requires="pyiqa", install=INSTALL)(factory)


for _name, _metric, _what in (("iqa-nima", "nima", "NIMA aesthetic score"), ("iqa-musiq", "musiq", "MUSIQ quality"),
                              ("iqa-dbcnn", "dbcnn", "DB-CNN quality"), ("iqa-tres", "tres", "TReS quality")):
    _register(_name, _metric, _what)
