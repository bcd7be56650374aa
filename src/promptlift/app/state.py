"""What the web app does, without the web: refine rounds, base-vs-lifted generation, blind pairs and votes,
curation review. The Gradio layer (server.py) only wires these to widgets, so they are tested directly too.

Every path a request can reach is fixed when the app starts (`ServeConfig`): eval runs are chosen by index
from `runs`, images by their row in a run's scores.jsonl or the curated metadata.jsonl; nothing a request sends
is ever used as a path.
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path
from typing import Callable

import torch

from ..data.review import REVIEW_FILE, read_review
from ..methods import METHODS
from ..pipeline.stack import LIFTED_STACK, STACK, expand_stack
from ..files import atomic_write_json, json_text
from .votes import QUESTIONS, VoteStore
from .config import ServeConfig

__all__ = ["AppState", "ServeConfig", "UserError"]

AVAILABLE_LIFTS = LIFTED_STACK  # the Create page offers the whole stack, and it is the default


class UserError(ValueError):
    """Bad input from the page: shown to the user as it is, never as a stack trace."""


def _inside(root: Path, relative: str) -> Path:
    """root/relative, refusing anything that resolves outside root (a run's own files only)."""
    path = (root / relative).resolve()
    if not path.is_relative_to(root.resolve()):
        raise UserError(f"{relative!r} is outside {root}.")
    return path


def whole_number(value, name: str) -> int:
    """`value` as an int when it is one (an int, or an integral float or string such as 3, 3.0, "3"); 0.9 or 1.7
    are refused, never truncated into another run or seed."""
    if isinstance(value, bool):
        raise UserError(f"`{name}` must be a whole number, got {value!r}.")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise UserError(f"`{name}` must be a whole number, got {value!r}.") from None
    if not number.is_integer():
        raise UserError(f"`{name}` must be a whole number, got {value!r}.")
    return int(number)


class AppState:
    """The app's resources (pipelines, refiner, stores) and its operations."""

    def __init__(self, cfg: ServeConfig):
        self.cfg = cfg
        self.votes = VoteStore(cfg.votes_db)
        self._pipes: dict[tuple, tuple] = {}
        self._refiner = None
        self.runs = [Path(r) for r in cfg.runs]
        self._rows = {i: self._read_rows(r) for i, r in enumerate(self.runs)}

    # -- create --------------------------------------------------------------------------------

    def check_prompt(self, prompt: str) -> str:
        prompt = (prompt or "").strip()
        if not prompt:
            raise UserError("Type a prompt first.")
        if len(prompt) > self.cfg.max_prompt_chars:
            raise UserError(f"The prompt has {len(prompt)} characters; the limit is {self.cfg.max_prompt_chars}.")
        return prompt

    @property
    def models(self) -> list[str]:
        return list(self.cfg.model) or ["embedded"]

    @property
    def available_lifts(self) -> tuple[str, ...]:
        """The lifts the Create page offers: on the embedded model the whole stack (the bundle's weights where `--lift`,
        `--textcraftor` and `--refiner` give none); on another model those they give."""
        from ..pipeline import is_embedded_model

        given = set(self.cfg.lift_paths) | ({"textcraftor"} if self.cfg.textcraftor else set()) | \
            ({"refiner"} if self.cfg.refiner else set())
        if all(is_embedded_model(m) for m in self.cfg.model):
            given |= set(AVAILABLE_LIFTS)
        extra = tuple(n for n in self.cfg.lift_paths if n not in LIFTED_STACK)
        return tuple(n for n in LIFTED_STACK if n in given) + extra

    def _lift_spec(self, name: str, mix: float) -> str:
        """`--lift` spec of a lift: the one `--lift` gives, else the bundle's; TextCraftor mixes the first two
        configured outputs by `mix`."""
        if name == "refiner" and self.cfg.refiner and name not in self.cfg.lift_paths:
            return f"refiner={self.cfg.refiner}"
        if name != "textcraftor" or not self.cfg.textcraftor:
            return self.cfg.lift_paths.get(name, name)
        folders = [str(f) for f in self.cfg.textcraftor]
        if len(folders) == 1 or mix >= 1:
            return f"textcraftor={folders[0]}"
        if mix <= 0:
            return f"textcraftor={folders[1]}"
        return f"textcraftor={folders[0]}:{mix:.1f},{folders[1]}:{1 - mix:.1f}"

    def pipeline(self, lifts: tuple[str, ...] = (), model: int = 0, mix: float = 1.0):
        """(pipe, lifts) for model `model` (an index into the configured ones) with a combination of the lifts,
        loaded once and kept; `mix` is the TextCraftor encoder mix, in steps of 0.1."""
        from ..pipeline import lift, load_pipeline, pipeline_lifts

        unknown = [n for n in lifts if n not in self.available_lifts]
        if unknown:
            raise UserError(f"Unknown lift {unknown[0]!r}; choose from {', '.join(self.available_lifts)}.")
        if not 0 <= int(model) < len(self.models):
            raise UserError("No such model.")
        mix = round(min(max(float(mix), 0.0), 1.0), 1)
        chosen = tuple(n for n in self.available_lifts if n in lifts)
        key = (int(model), chosen, mix if "textcraftor" in lifts else None)
        if key not in self._pipes:
            source = self.cfg.model[int(model)] if self.cfg.model else None
            pipe = load_pipeline(source, config=self.cfg.model_config)
            try:
                specs, options = [self._lift_spec(n, mix) for n in key[1]], ()
                if key[1] == LIFTED_STACK:  # the whole stack, as `--lifted`: its weights and options
                    specs, options = expand_stack(specs)
                if specs:
                    lift(pipe, specs, options, reversible=False)
            except ValueError as e:
                raise UserError(f"That lift is not available here: {e}") from None
            self._pipes[key] = (pipe, pipeline_lifts(pipe))
        return self._pipes[key]

    def refiner(self):
        if self._refiner is None:
            from ..methods.refiner import Refiner

            path = self.cfg.refiner or METHODS["refiner"].bundle_weights
            if path is None:
                raise UserError("No prompt refiner is installed; start the app with `--refiner PATH`.")
            self._refiner = Refiner.load(path, self.pipeline()[0])
        return self._refiner

    def refine_round(self, prompt: str, prefix: str = "", seed: int = 0) -> list[str]:
        """Three candidates extending `prefix` (the refined prompt so far) by 6 tokens each."""
        prompt = self.check_prompt(prompt)
        if len(prefix or "") > 4 * self.cfg.max_prompt_chars:
            raise UserError("The refined prompt is too long to extend.")
        return self.refiner().candidates(prompt, prefix or "", n=3, new_tokens=6, seed=seed)

    @property
    def stack_alpha(self) -> float:
        """TextCraftor's alpha in the lifted stack (`STACK`): the Create page's default."""
        return float(next(each.options for each in STACK if each.name == "textcraftor").get("alpha", 1.0))

    def generate(self, prompt: str, lifts: tuple[str, ...], seed: int, steps: int, alpha: float | None = None,
                 on_step: Callable[[int], None] | None = None, model: int = 0, mix: float = 1.0) -> tuple:
        """(base image, lifted image, settings) for the same prompt and seed, sampled as `promptlift generate` samples
        (the model's guidance scale and size); `alpha` sets TextCraftor's (None: as loaded, the stack's for the whole
        stack). The settings are the lifted image's sidecar, as `generate` writes it."""
        from ..generation import SamplingConfig, image_record, sampling_kwargs
        from ..pipeline import call_with_lifts, rewrite_prompts

        prompt = self.check_prompt(prompt)
        if not 1 <= int(steps) <= self.cfg.max_steps:
            raise UserError(f"Steps must be between 1 and {self.cfg.max_steps}.")
        if not 0 <= int(seed) < 2**31:
            raise UserError("The seed must be a whole number from 0 to 2147483647.")
        source = self.cfg.model[int(model)] if self.cfg.model else None
        sampling = SamplingConfig(model=source, model_config=self.cfg.model_config, num_inference_steps=int(steps))
        images, used, loaded = [], prompt, []
        for names in ((), tuple(lifts)):
            pipe, loaded = self.pipeline(names, model, mix)
            for lift in loaded:
                if lift.name == "textcraftor" and alpha is not None:
                    lift.alpha = float(alpha)
            pipe.set_progress_bar_config(disable=True)
            used = rewrite_prompts([prompt], loaded)[0]
            out = call_with_lifts(pipe, loaded, [prompt], rewritten=[used], output_type="pil",
                                  generator=[torch.Generator("cpu").manual_seed(int(seed))],
                                  callback_on_step_end=None if on_step is None else _step_callback(on_step),
                                  **sampling_kwargs(sampling))
            images.append(out.images[0])
        settings = image_record(sampling, pipe, loaded, prompt, used, int(seed), images[1])
        if "textcraftor" in lifts and len(self.cfg.textcraftor) > 1:
            settings["textcraftor_mix"] = self._lift_spec("textcraftor", mix)
        return images[0], images[1], settings

    def save_download(self, image, settings: dict) -> list[str]:
        """Write the image and its JSON settings under output_dir; return their paths for the download widget."""
        out = Path(self.cfg.output_dir) / "downloads"
        out.mkdir(parents=True, exist_ok=True)
        stem = out / f"{int(time.time() * 1000)}-seed{settings['seed']}"
        image.save(stem.with_suffix(".png"))
        atomic_write_json(stem.with_suffix(".json"), settings)
        return [str(stem.with_suffix(".png")), str(stem.with_suffix(".json"))]

    # -- rate ----------------------------------------------------------------------------------

    @staticmethod
    def _read_rows(run: Path) -> dict[tuple[str, int], str]:
        rows = [json.loads(x) for x in (run / "scores.jsonl").read_text().splitlines() if x.strip()]
        return {(r["prompt"], int(r["seed"])): r["image"] for r in rows}

    def run_pair(self, a: int, b: int) -> tuple[Path, Path, list[tuple[str, int]]]:
        if not (0 <= a < len(self.runs) and 0 <= b < len(self.runs)) or a == b:
            raise UserError("Choose two different runs.")
        shared = sorted(set(self._rows[a]) & set(self._rows[b]))
        if not shared:
            raise UserError("These two runs share no prompt and seed; evaluate both on the same prompt set.")
        return self.runs[a], self.runs[b], shared

    def next_pair(self, a: int, b: int, rng: random.Random) -> dict:
        """A blind pair: one shared (prompt, seed), the two images in random order, systems hidden."""
        run_a, run_b, shared = self.run_pair(a, b)
        prompt, seed = rng.choice(shared)
        flipped = rng.random() < 0.5
        left, right = (_inside(run_b, self._rows[b][(prompt, seed)]), _inside(run_a, self._rows[a][(prompt, seed)])) if flipped \
            else (_inside(run_a, self._rows[a][(prompt, seed)]), _inside(run_b, self._rows[b][(prompt, seed)]))
        return {"a": a, "b": b, "prompt": prompt, "seed": seed, "flipped": flipped, "left": str(left), "right": str(right)}

    def vote(self, pair: dict, question: str, choice: str, rater: str) -> None:
        """`choice` is 'left', 'right' or 'tie', as seen on the page; stored as run a / run b / tie."""
        if not pair:
            raise UserError("Load a pair first.")
        if question not in QUESTIONS or choice not in ("left", "right", "tie"):
            raise UserError("Pick a question and an answer.")
        a, b, seed = (whole_number(pair.get(k), k) for k in ("a", "b", "seed"))
        run_a, run_b, shared = self.run_pair(a, b)
        if (pair["prompt"], seed) not in shared:
            raise UserError("That pair is not part of these runs.")
        winner = "tie" if choice == "tie" else ("a" if (choice == "left") != bool(pair["flipped"]) else "b")
        self.votes.add((rater or "anonymous").strip() or "anonymous", str(run_a), str(run_b), pair["prompt"],
                       seed, question, winner)

    def win_table(self, a: int, b: int) -> list[list]:
        run_a, run_b, _ = self.run_pair(a, b)
        rows = []
        for r in self.votes.table(str(run_a), str(run_b)):
            ci = f"[{r['ci95'][0]:.2f}, {r['ci95'][1]:.2f}]" if r["ci95"] else "-"
            rows.append([r["question"], r["votes"], "-" if r["win_rate"] is None else f"{r['win_rate']:.3f}", ci])
        return rows

    def export(self, a: int, b: int, question: str = "visual appeal") -> Path:
        run_a, run_b, shared = self.run_pair(a, b)
        images = {k: (self._rows[a][k], self._rows[b][k]) for k in shared}
        out = Path(self.cfg.output_dir) / f"human-{run_a.name}-vs-{run_b.name}"
        try:
            self.votes.export(run_a, run_b, images, out, question)
        except ValueError as e:
            raise UserError(str(e)) from None
        return out / "compare.html"

    # -- review --------------------------------------------------------------------------------

    def review_items(self) -> list[dict]:
        if self.cfg.curated is None:
            raise UserError("No curated set was given; start the app with `--curated PATH`.")
        root = Path(self.cfg.curated)
        rows = [json.loads(x) for x in (root / "metadata.jsonl").read_text().splitlines() if x.strip()]
        decided = read_review(root)
        return [{"file_name": r["file_name"], "path": str(_inside(root, r["file_name"])),
                 "caption": r.get("complex") or r.get("caption") or "", "kept": decided.get(r["file_name"], True)}
                for r in rows]

    def review(self, index: int, kept: bool, reviewer: str = "anonymous") -> None:
        items = self.review_items()
        if not 0 <= int(index) < len(items):
            raise UserError("No such image.")
        line = {"file_name": items[int(index)]["file_name"], "kept": bool(kept), "by": reviewer or "anonymous",
                "ts": time.time(), "reason": "human review"}
        with open(Path(self.cfg.curated) / REVIEW_FILE, "a") as f:
            f.write(json_text(line) + "\n")


def _step_callback(on_step: Callable[[int], None]):
    """A diffusers `callback_on_step_end` that reports each finished step (raising there stops the generation)."""
    def callback(pipe, step, timestep, tensors):
        on_step(step)
        return {}

    return callback
