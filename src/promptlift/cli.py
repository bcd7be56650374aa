"""The `promptlift` command line: parse, call the library, print where the results went.

Each command's options are built from its config dataclass, so every option is documented once
(in the dataclass) and `--config FILE.yaml` takes the same keys.
"""

from __future__ import annotations

import functools
import json
import os
import sys
import types
import typing
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Literal, Sequence

import click

from . import __version__
from .config import ConfigField, config_fields, load_config
from .utils import json_text

__all__ = ["main", "cli", "config_command"]


class _ConfigCommand(click.Command):
    """A command whose unknown options are answered with the list of valid ones."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.NoSuchOption as e:
            valid = sorted(o for p in self.params for o in p.opts if o.startswith("--"))
            raise click.UsageError(f"unknown option {e.option_name!r}; valid options: {', '.join(valid)}.", ctx) from None


def _is_list(tp: Any) -> bool:
    inner = typing.get_args(tp)[0] if typing.get_origin(tp) in (typing.Union, types.UnionType) else tp
    return typing.get_origin(inner) in (list, tuple)


def _option(f: ConfigField) -> click.Option:
    """A click option for one config field; values stay strings so `config.coerce` is the one converter."""
    default = "" if f.default is None else f" [default: {f.default}]" if f.default not in ([], ()) else ""
    help_text = f"{f.help}{default}"
    if f.type is bool:
        return click.Option([f"--{f.name}/--no-{f.name}"], default=None, help=help_text)
    if typing.get_origin(f.type) is Literal:
        return click.Option([f"--{f.name}"], type=click.Choice([str(c) for c in typing.get_args(f.type)]), default=None, help=help_text)
    if _is_list(f.type):
        return click.Option([f"--{f.name}"], multiple=True, default=None, help=help_text, metavar="VALUE")
    metavar = getattr(typing.get_args(f.type)[0] if typing.get_args(f.type) else f.type, "__name__", "VALUE").upper()
    return click.Option([f"--{f.name}"], default=None, help=help_text, metavar=metavar)


def config_command(name: str, cfg_cls: type, run: Callable[[Any], Any], *, arguments: Sequence[str] = ()) -> click.Command:
    """Command `name`: an option per field of `cfg_cls` (`arguments` are positional), then `run(cfg)`."""
    fields = config_fields(cfg_cls)
    params: list[click.Parameter] = [
        click.Argument([a], nargs=-1 if _is_list(fields[a].type) else 1, required=False) for a in arguments
    ]
    params += [_option(f) for f in fields.values() if f.name not in arguments]
    params.append(click.Option(["--config"], type=click.Path(dir_okay=False), help="YAML file with any of these options as keys."))

    def callback(config: str | None = None, **values: Any) -> None:
        overrides = {k: v for k, v in values.items() if v is not None and v != ()}
        try:
            cfg = load_config(cfg_cls, config, overrides)
            _quiet_loading()
            run(cfg)
        except (ValueError, FileNotFoundError) as e:
            if _debug():
                raise
            raise click.ClickException(str(e)) from e
        except Exception as e:  # anything else is still one line, not a traceback, unless --debug asks for it
            if _debug():
                raise
            raise click.ClickException(f"{type(e).__name__}: {e}\n(`promptlift --debug {name} ...` shows the "
                                       "traceback)") from e

    doc = (cfg_cls.__doc__ or "").strip()
    return _ConfigCommand(name, params=params, callback=callback, help=doc, short_help=doc.split("\n")[0])


LazyCommands = dict[str, tuple[str, Callable[[], click.Command]]]


class LazyGroup(click.Group):
    """A group whose commands import their (heavy) modules only when run, so `--help` stays fast.

    `lazy` maps a command name to (one-line help, a function building the command), or is a function returning that
    map, called when the group is first listed or used (a registry read only then).
    """

    def __init__(self, *args, lazy: LazyCommands | Callable[[], LazyCommands] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self._lazy = lazy or {}

    @property
    def lazy(self) -> LazyCommands:
        if callable(self._lazy):
            self._lazy = dict(self._lazy())
        return self._lazy

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *self.lazy])

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self.lazy and name not in self.commands:
            self.add_command(self.lazy[name][1](), name)
        return super().get_command(ctx, name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = []
        for name in self.list_commands(ctx):
            if name in self.lazy and name not in self.commands:
                rows.append((name, self.lazy[name][0]))
            else:
                rows.append((name, self.commands[name].get_short_help_str(limit=80)))
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(__version__, prog_name="promptlift")
@click.option("--debug", is_flag=True, help="Show full tracebacks instead of one-line errors.")
def cli(debug: bool) -> None:
    """promptlift: high-quality images from plain prompts, on any Stable Diffusion pipeline."""


def _quiet_loading() -> None:
    """Hide diffusers' and transformers' loading bars and notices (e.g. "No LoRA keys associated to CLIPTextModel"
    for a UNet-only LoRA) while a command runs; errors still show. Called by commands, so `--help` imports neither."""
    import diffusers.utils.logging as diffusers_logging
    import transformers.utils.logging as transformers_logging

    for lib in (diffusers_logging, transformers_logging):
        lib.set_verbosity_error()
        lib.disable_progress_bar()


def _debug() -> bool:
    ctx = click.get_current_context(silent=True)
    return bool(ctx and ctx.find_root().params.get("debug"))


def _run_generate(cfg) -> None:
    from .generation import generate

    paths = generate(cfg)
    for path in paths:
        sidecar = json.loads(path.with_suffix(".json").read_text())
        if sidecar["prompt_used"] != sidecar["prompt"]:
            click.echo(f"{path.name}: {sidecar['prompt']!r} -> {sidecar['prompt_used']!r}")
    click.echo(f"wrote {len(paths)} image(s) with JSON sidecars to {cfg.output_dir}")
    if cfg.compare_base:
        click.echo(f"base model's images in {cfg.output_dir / 'base'}; side by side: {cfg.output_dir / 'sheet.png'}")


@dataclass
class TinyPipelineConfig:
    """Build a tiny random Stable Diffusion pipeline offline (for tests and trying the tools; images are noise)."""

    output_dir: Path = field(default=Path(".cache/tiny-sd1"), metadata={"help": "Folder to save the pipeline in."})
    arch: Literal["sd1", "sd2", "sdxl"] = field(default="sd1", metadata={"help": "Architecture to mimic."})
    seed: int = field(default=0, metadata={"help": "Seed of the random weights."})


def _run_tiny_pipeline(cfg: TinyPipelineConfig) -> None:
    from .tiny import save_tiny_pipeline

    click.echo(f"saved a tiny {cfg.arch} pipeline to {save_tiny_pipeline(cfg.arch, cfg.output_dir, cfg.seed)}")


@cli.command("lifts")
def list_lifts() -> None:
    """List the registered lifts (for `--lift NAME[=PATH]`)."""
    from . import methods  # noqa: F401 (registers the methods' lifts)
    from .pipeline import LIFTS

    for spec in LIFTS.values():
        default = spec.default_path() if spec.default_path else None
        options = spec.options()
        click.echo(f"{spec.name:16s} {spec.help}" + (f" [default PATH: {default}]" if default else "")
                   + (f" [--lift_option {spec.name}.{'|'.join(options)}=VALUE]" if options else ""))


def _generate_command() -> click.Command:
    from .generation import GenerateConfig

    return config_command("generate", GenerateConfig, _run_generate, arguments=("prompt",))


def _run_eval(cfg) -> None:
    from .evaluation.run import evaluate

    out = evaluate(cfg)
    click.echo((out / "summary.json").read_text().rstrip())
    click.echo(f"run folder: {out} (report.html, summary.json, scores.jsonl)")


def _run_compare(cfg) -> None:
    from .evaluation.compare import compare

    click.echo(json_text(compare(cfg), indent=2))


def _eval_command() -> click.Command:
    from .evaluation.run import EvalConfig

    return config_command("eval", EvalConfig, _run_eval)


def _compare_command() -> click.Command:
    from .evaluation.compare import CompareConfig

    return config_command("compare", CompareConfig, _run_compare, arguments=("run_a", "run_b"))


def _run_export(cfg) -> None:
    from .evaluation.export import export_run

    click.echo(f"wrote {export_run(cfg)}")


def _export_command() -> click.Command:
    from .evaluation.export import ExportConfig

    return config_command("export", ExportConfig, _run_export, arguments=("run",))


def _run_curate(cfg) -> None:
    from .data.curation import curate

    out = curate(cfg)
    click.echo(f"curated set, decisions.jsonl and report.html in {out}")


def _curate_command() -> click.Command:
    from .data.curation import CurateConfig

    return config_command("curate", CurateConfig, _run_curate)


def _run_serve(cfg) -> None:
    from .app.server import serve

    click.echo(f"promptlift app on http://{cfg.host}:{cfg.port} (Ctrl+C stops it)")
    serve(cfg)


def _serve_command() -> click.Command:
    from .app.state import ServeConfig

    return config_command("serve", ServeConfig, _run_serve)


def _run_refine(cfg) -> None:
    from .methods.refiner.interactive import refine

    def show(round_index: int, candidates: list[str]) -> None:
        click.echo(f"round {round_index}:")
        for i, c in enumerate(candidates, 1):
            click.echo(f"  [{i}] {c}")

    def ask(candidates: list[str]) -> int:
        return click.prompt("pick", type=click.IntRange(1, len(candidates)), default=1) - 1

    if cfg.pick == "ask" and not _stdin_is_tty():
        click.echo("no terminal to ask on (stdin is not a TTY): picking the first candidate each round; pass "
                   "`--pick first` or `--pick reward` to choose.", err=True)
        cfg = replace(cfg, pick="first")

    final = refine(cfg, show=show, ask=ask)
    click.echo(f"refined: {final}")


def _stdin_is_tty() -> bool:
    return sys.stdin.isatty()


def _refine_command() -> click.Command:
    from .methods.refiner.interactive import RefineConfig

    return config_command("refine", RefineConfig, _run_refine, arguments=("prompt",))


def _method_command(name: str) -> click.Command:
    from .methods import METHODS

    method = METHODS[name]

    def run(cfg) -> None:
        out = method.train(cfg)
        best = "best/ (best held-out) and " if (out / "best").is_dir() else ""
        click.echo(f"{name} run in {out}: trained weights in {best}final/")

    return config_command(name, method.config, run)


def _method_commands() -> dict[str, tuple[str, Callable[[], click.Command]]]:
    """`promptlift train NAME` for every registered method (the registry is read when the group is used)."""
    from .methods import METHODS

    return {name: (spec.help, functools.partial(_method_command, name)) for name, spec in METHODS.items()}


@cli.group("train", cls=LazyGroup, lazy=_method_commands)
def train() -> None:
    """Train a method (each takes --config FILE.yaml and --key value overrides)."""


def _run_sur_triples(cfg) -> None:
    from .methods.sur_adapter.triples import build_triples

    out = build_triples(cfg)
    click.echo(f"triples in {out} (decisions.jsonl says why each input was kept or dropped)")


def _sur_triples_command() -> click.Command:
    from .methods.sur_adapter.triples import TriplesConfig

    return config_command("sur-triples", TriplesConfig, _run_sur_triples)


@cli.command("rewards")
def list_rewards() -> None:
    """List the registered rewards (for `--rewards` and `--judge`)."""
    from .rewards import REWARDS

    for spec in REWARDS.values():
        tag = " [evaluation only]" if spec.eval_only else ""
        click.echo(f"{spec.name:24s} {spec.help}{tag}")


@cli.command("prompt-sets")
def list_prompt_sets() -> None:
    """List the named prompt sets (for `--prompts`)."""
    from .data import PROMPT_SETS

    for spec in PROMPT_SETS.values():
        click.echo(f"{spec.name:22s} {spec.help}")


cli.lazy.update(
    {
        "eval": ("Generate a prompt set with fixed seeds, score, summarise and report.", _eval_command),
        "compare": ("Win rate of run A over run B with a bootstrap 95 % interval.", _compare_command),
        "export": ("Lay out a run's images for GenEval or T2I-CompBench.", _export_command),
        "curate": ("Curate a few very aesthetic images from a large pool (Emu's funnel).", _curate_command),
        "generate": ("Generate images from prompts (PNG + JSON sidecar per image).", _generate_command),
        "refine": ("Rewrite a plain prompt into model-preferred candidates (3 per round, pick one, extend).",
                   _refine_command),
        "serve": ("The web app: refine and pick, base vs lifted, blind A/B rating, curation review.", _serve_command),
        "sur-triples": ("SUR-adapter triples from (image, complex prompt) pairs, with semantic correction.",
                        _sur_triples_command),
        "tiny-pipeline": (
            TinyPipelineConfig.__doc__.split("\n")[0],
            lambda: config_command("tiny-pipeline", TinyPipelineConfig, _run_tiny_pipeline),
        ),
    }
)


@cli.group("world", cls=LazyGroup)
def world() -> None:
    """The procedural world: render scenes, build datasets and prompt sets, measure it."""


def _world_command(name: str, config: str, run: Callable[[Any], Any]) -> Callable[[], click.Command]:
    """A lazily built `world` command whose config class lives in promptlift.world.config."""

    def build() -> click.Command:
        from .world import config as world_config

        return config_command(name, getattr(world_config, config), run)

    return build


def _run_world_render(cfg) -> None:
    from .world.dataset import render_scenes

    for png in render_scenes(cfg):
        record = json.loads(png.with_suffix(".json").read_text())
        click.echo(f"{png}\n  complex:   {record['complex']}\n  literal:   {record['literal']}\n"
                   f"  narrative: {record['narrative']}")


def _run_world_dataset(cfg) -> None:
    from .world.dataset import build_dataset

    click.echo(f"wrote {cfg.num_scenes} scenes to {build_dataset(cfg)}")


def _run_world_prompts(cfg) -> None:
    from .world.dataset import write_prompt_set

    result = write_prompt_set(cfg)
    click.echo(f"wrote {cfg.num_prompts} prompts to {result}" if cfg.output else result, nl=bool(cfg.output))


def _run_world_contact_sheet(cfg) -> None:
    from .world.dataset import contact_sheet

    click.echo(f"wrote {contact_sheet(cfg)}")


def _run_world_stats(cfg) -> None:
    from .world.dataset import world_stats

    click.echo(json_text(world_stats(cfg), indent=2))


def _run_train_bundle(cfg) -> None:
    from .recipes.bundle import train_bundle

    click.echo(json_text(train_bundle(cfg), indent=2))


def _train_bundle_command() -> click.Command:
    from .recipes.bundle import BundleConfig

    return config_command("train-bundle", BundleConfig, _run_train_bundle)


world.lazy.update(
    {
        "train-bundle": ("Train the embedded default bundle (resumable, part by part).", _train_bundle_command),
        "render": ("Render world scenes to PNGs with their prompts.", _world_command("render", "RenderConfig", _run_world_render)),
        "dataset": ("Build a world dataset (imagefolder + metadata.jsonl).", _world_command("dataset", "DatasetConfig", _run_world_dataset)),
        "prompts": ("Write a named world prompt set as JSONL.", _world_command("prompts", "PromptSetConfig", _run_world_prompts)),
        "contact-sheet": ("Scenes sorted by aesthetic score with their prompts, as one PNG.",
                          _world_command("contact-sheet", "ContactSheetConfig", _run_world_contact_sheet)),
        "stats": ("Score distribution, narrative indirection and pool disjointness.",
                  _world_command("stats", "StatsConfig", _run_world_stats)),
    }
)


def _quiet_third_party() -> None:
    """Hide loading progress bars and a transformers notice about torchvision, which promptlift does not use."""
    import logging

    class _NoTorchvisionNotice(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            return "requires torchvision (not installed)" not in record.getMessage()

    logging.getLogger("transformers.utils.import_utils").addFilter(_NoTorchvisionNotice())



def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the `promptlift` console script."""
    _quiet_third_party()
    if int(os.environ.get("RANK", 0)) > 0:  # under `accelerate launch` / `torchrun` the main process reports; errors still show
        sys.stdout = open(os.devnull, "w")
    cli.main(args=list(argv) if argv is not None else None, prog_name="promptlift")
