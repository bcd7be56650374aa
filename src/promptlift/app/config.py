"""The config of `promptlift serve`. It imports neither torch nor diffusers (nor gradio)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class ServeConfig:
    """Serve the web app: refine-and-pick, base vs lifted, blind A/B rating, curation review."""

    model: list[str] = field(default_factory=list, metadata={"help": "Pipelines the Create page offers (hub id, folder or single file); repeatable; default: the embedded model."})
    model_config: str | None = field(default=None, metadata={"help": "For a single-file --model: a diffusers folder of its architecture (needed offline)."})
    lift: list[str] = field(default_factory=list, metadata={
        "help": "Lift the Create page offers, as NAME=PATH (a folder or Hub repo id trained on --model) or a lift "
                "folder; repeatable; default: the whole stack with the bundle's weights (the embedded model's)."})
    textcraftor: list[Path] = field(default_factory=list, metadata={"help": "TextCraftor outputs the Create page may mix (first two: the encoder-mix slider); default: the bundle's."})
    refiner: Path | None = field(default=None, metadata={"help": "Refiner folder for the Create page; default: the bundle's."})
    runs: list[Path] = field(default_factory=list, metadata={"help": "Eval run folders the Rate page may pair; repeatable."})
    curated: Path | None = field(default=None, metadata={"help": "Curated set (promptlift curate output) for the Review page."})
    votes_db: Path = field(default=Path("runs/votes.sqlite"), metadata={"help": "SQLite file of the A/B votes."})
    output_dir: Path = field(default=Path("runs/app"), metadata={"help": "Where generated images and their settings are written."})
    host: str = field(default="127.0.0.1", metadata={"help": "Address to bind (0.0.0.0 exposes the app to the network)."})
    port: int = field(default=7860, metadata={"help": "Port."})
    max_prompt_chars: int = field(default=300, metadata={"help": "Longest prompt accepted."})
    max_steps: int = field(default=50, metadata={"help": "Most denoising steps a request may ask for."})

    def __post_init__(self):
        from ..pipeline import is_embedded_model, parse_lift

        self.lift_paths = {}  # lift type -> spec, in the order given
        for spec in self.lift:
            name, path = parse_lift(spec)
            if path is None:
                raise ValueError(f"`--lift {spec}` names no weights; pass NAME=PATH (a folder or Hub repo id).")
            if name in self.lift_paths:
                raise ValueError(f"`--lift` gives {name!r} twice; the Create page offers one of each.")
            self.lift_paths[name] = f"{name}={path}"
        own = [m for m in self.model if not is_embedded_model(m)]
        if own and not (self.lift or self.textcraftor or self.refiner):
            raise ValueError(f"`--model {own[0]}` needs lifts trained on it, the bundle's being the embedded model's; "
                             "pass `--lift NAME=PATH` for each (e.g. --lift textcraftor=runs/tc/best).")
        for run in self.runs:
            if not (Path(run) / "scores.jsonl").is_file():
                raise ValueError(f"`runs` entry {str(run)!r} is not an eval run (no scores.jsonl); pass `promptlift eval` output folders.")
        if self.curated is not None and not (Path(self.curated) / "metadata.jsonl").is_file():
            raise ValueError(f"`curated` {str(self.curated)!r} has no metadata.jsonl; pass a `promptlift curate` output folder.")
        if not 0 < self.port < 65536:
            raise ValueError(f"`port` must be in 1..65535, got {self.port}.")
