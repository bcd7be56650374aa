"""The configs of `promptlift eval`, `compare` and `export run`. They import neither torch nor diffusers, so `--help`
and a YAML config read them quickly."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from ..profiles import DEFAULT_PROFILE, judge_defaults, model_profile, prompts_or_default
from ..sampling import SamplingConfig

__all__ = ["CompareConfig", "EvalConfig", "ExportConfig"]


@dataclass
class EvalConfig(SamplingConfig):
    """Generate a prompt set with fixed seeds, score every image, and write scores, a summary and a report."""

    prompts: str | None = field(default=None, metadata={
        "help": "A named prompt set (`promptlift prompt-sets`), or a .txt (a prompt a line) or .jsonl file of "
                "{\"prompt\", \"expected\"?}; default: world-narrative-val on the embedded model, none on another."})
    prompts_path: str | None = field(default=None, metadata={"help": "Local copy of a public benchmark file (or its folder)."})
    prompts_subset: str | None = field(default=None, metadata={"help": "Category/split of the set (e.g. T2I-CompBench 'numeracy')."})
    num_prompts: int | None = field(default=None, metadata={"help": "Use the first N prompts only (default: all).", "min": 1})
    seeds: int = field(default=1, metadata={"help": "Images per prompt, with seeds 0..N-1.", "min": 1, "max": 10000})
    rewards: list[str] = field(default_factory=list, metadata={
        "help": "Rewards to score with (see `promptlift rewards`; repeat the option or separate them by commas); "
                "default: the world's on the embedded model, else "
                "clip-score, laion-aesthetic, pickscore, hpsv2 and imagereward (their weights checked before any work)."})
    reward_option: list[str] = field(default_factory=list, metadata={"help": "REWARD.KEY=VALUE option of a reward; repeatable."})
    output_dir: Path = field(default=Path("runs/eval"), metadata={"help": "Run folder (resumed if it holds the same run)."})
    report_images: int = field(default=96, metadata={"help": "Images shown in report.html.", "min": 0})
    judge_bundle: Path | None = field(default=None, metadata={"help": "Bundle whose attribute judge measures semantic accuracy; default: the embedded one."})
    overwrite: bool = field(default=False, metadata={"help": "Start afresh in an output_dir that holds another run (its "
                                                               "scores, images and report are deleted)."})
    system: list[str] = field(default_factory=list, metadata={
        "help": "NAME=LIFT[,LIFT...]: a system to compare, repeatable; each LIFT is NAME[=PATH], `lifted` (the whole "
                "stack) or LIFT.KEY=VALUE (an option), `NAME=` the model without lifts. Every system runs on every set "
                "of --prompts (comma-separated) into OUTPUT_DIR/SET/NAME; one table per set against the first system "
                "(or --baseline), with 95 % intervals, in OUTPUT_DIR/systems.json."})
    baseline: str | None = field(default=None, metadata={"help": "With --system: the system the others are compared "
                                                                  "with; default: the first."})
    judge: str | None = field(default=None, metadata={
        "help": "With --system: the reward (one of --rewards) that judges the win rates; default: the model's judge "
                "if scored, else the first reward."})
    results: Path | None = field(default=None, metadata={"help": "With --system: also write systems.json here."})
    title: str | None = field(default=None, metadata={"help": "With --system: the results' heading in reports."})

    def __post_init__(self):
        super().__post_init__()
        if self.seeds < 1:
            raise ValueError(f"`seeds` must be >= 1, got {self.seeds}.")
        defaults = judge_defaults(self.model)
        self.prompts = prompts_or_default(self.prompts, defaults.eval_prompts, self.model, "prompts",
                                          ", or a named set such as partiprompts, drawbench, geneval or t2i-compbench "
                                          "with --prompts_path (its local copy)")
        # `--rewards a,b` as `--rewards a --rewards b` (no reward's name holds a comma)
        self.rewards = [r.strip() for item in self.rewards for r in str(item).split(",") if r.strip()] or list(
            defaults.eval_rewards)
        self.reward_option = list(self.reward_option) + self._benchmark_files()
        from ..rewards import parse_reward_options

        parse_reward_options(self.reward_option)
        if self.system:
            if self.lift or self.lift_option:
                raise ValueError("`--lift`/`--lift_option`/`--lifted` and `--system` are given; with --system, name "
                                 "each system's lifts in it, e.g. --system stack=lifted --system tc=textcraftor=PATH.")
            self.judge = self.judge or (defaults.judge if defaults.judge in self.rewards else self.rewards[0])
            if self.judge not in self.rewards:
                raise ValueError(f"`judge` {self.judge!r} is not scored; add it to --rewards ({', '.join(self.rewards)}).")
        elif any(getattr(self, name) is not None for name in ("baseline", "judge", "results", "title")):
            raise ValueError("`baseline`, `judge`, `results` and `title` describe a comparison of systems; add "
                             "--system NAME=LIFT[,LIFT...] (one per system), or drop them.")


    def _benchmark_files(self) -> list[str]:
        """The benchmark's files for the judges that read them, from `--prompts_path` / `--prompts_subset` where the
        user named no other: GenEval's metadata (geneval, vqa), T2I-CompBench's prompt files and categories."""
        sets, given = str(self.prompts).split(","), {o.partition("=")[0] for o in self.reward_option}
        options = []
        if "t2i-compbench" in sets and "t2i-compbench" in self.rewards:
            from ..data.prompt_sets import CACHE  # without a path, the files come from their address into the cache

            folder = self.prompts_path or CACHE / "t2i-compbench"
            wanted = [("t2i-compbench.prompts", folder), ("t2i-compbench.subset", self.prompts_subset)]
            options += [f"{key}={value}" for key, value in wanted if value and key not in given]
        if "geneval" in sets and self.prompts_path and Path(self.prompts_path).is_file():
            wanted = [("geneval", "geneval.metadata"), ("vqa", "vqa.geneval")]
            options += [f"{key}={self.prompts_path}" for reward, key in wanted
                        if reward in self.rewards and key not in given and "vqa.questions" not in given]
        return options


@dataclass
class CompareConfig:
    """Win rate of run A over run B = P(A > B) + 1/2 P(tie) over shared (prompt, seed) pairs, with a bootstrap 95 % CI."""

    run_a: Path | None = field(default=None, metadata={"help": "Run folder of system A."})
    run_b: Path | None = field(default=None, metadata={"help": "Run folder of system B."})
    judge: str | None = field(default=None, metadata={
        "help": "Reward that judges each pair (scored now if a run lacks it); default: world-aesthetic when both runs "
                "are of the embedded model, else imagereward."})
    tie_tolerance: float = field(default=0.0, metadata={"help": "Scores this close count as a tie."})
    output_dir: Path | None = field(default=None, metadata={
        "help": "Folder for compare.json and compare.html; default: RUN_A/compare-vs-<B>.", "aliases": ("output",)})

    def __post_init__(self):
        for name in ("run_a", "run_b"):
            run = getattr(self, name)
            if run is None or not (Path(run) / "scores.jsonl").is_file():
                raise ValueError(f"`{name}` {str(run)!r} is not an eval run folder (no scores.jsonl); pass the "
                                 "output_dir of a `promptlift eval` run.")
        if self.tie_tolerance < 0:
            raise ValueError(f"`tie_tolerance` must be >= 0, got {self.tie_tolerance}.")
        if self.judge is None:
            models = [json.loads(p.read_text()).get("model") if p.is_file() else None
                      for p in (Path(self.run_a) / "config.json", Path(self.run_b) / "config.json")]
            profiles = {model_profile(m) for m in models}  # both runs' models of one profile: its judge
            self.judge = (profiles.pop() if len(profiles) == 1 else DEFAULT_PROFILE).defaults.judge


@dataclass
class ExportConfig:
    """Copy an eval run's images into the folder layout of GenEval or T2I-CompBench, for their own scorers."""

    run: Path | None = field(default=None, metadata={"help": "Eval run folder."})
    format: Literal["geneval", "t2i-compbench"] = field(default="geneval", metadata={"help": "Target layout."})
    output_dir: Path = field(default=Path("runs/export"), metadata={"help": "Folder to write (atomically)."})

    def __post_init__(self):
        if self.run is None or not (Path(self.run) / "scores.jsonl").is_file():
            raise ValueError(f"`run` {str(self.run)!r} is not an eval run folder (no scores.jsonl).")
