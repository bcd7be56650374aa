"""The `promptlift` command line: parse, call the library, print where the results went.

Each command's options are built from its config dataclass, so every option is documented once
(in the dataclass) and `--config FILE.yaml` takes the same keys.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import inspect
import json
import os
import sys
import types
import typing
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Literal, Sequence

import click

# torch deprecates `torch.jit.script_method`, which bitsandbytes (the optional 8-bit optimizer) uses when the libraries
# below import it: not the user's concern, so hidden before they load
warnings.filterwarnings("ignore", message=r"`torch\.jit\.script_method` is deprecated", category=DeprecationWarning)

from . import __version__  # noqa: E402
from .config import ConfigField, config_fields, load_config  # noqa: E402

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
    default = "" if f.default in (None, "", [], ()) else f" [default: {f.default}]"
    help_text = f"{f.help}{default}"
    if f.type is bool:
        return click.Option([f"--{f.name}/--no-{f.name}"], default=None, help=help_text)
    names = [f"--{f.name}", *(f"--{a}" for a in f.aliases), f.name]  # other names of the key; the value lands under its own
    if typing.get_origin(f.type) is Literal:
        return click.Option(names, type=click.Choice([str(c) for c in typing.get_args(f.type)]), default=None, help=help_text)
    if _is_list(f.type):
        return click.Option(names, multiple=True, default=None, help=help_text, metavar="VALUE")
    metavar = getattr(typing.get_args(f.type)[0] if typing.get_args(f.type) else f.type, "__name__", "VALUE").upper()
    return click.Option(names, default=None, help=help_text, metavar=metavar)


def config_command(name: str, cfg_cls: type, run: Callable[[Any], Any], *, arguments: Sequence[str] = ()) -> click.Command:
    """Command `name`: an option per field of `cfg_cls` (`arguments` are positional), then `run(cfg)`; the config's
    docstring is the help."""
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
            command = click.get_current_context().command_path.partition(" ")[2]  # "train quality-tuning"
            raise click.ClickException(f"{type(e).__name__}: {e}\n(`promptlift --debug {command} ...` shows the "
                                       "traceback)") from e

    doc = inspect.getdoc(cfg_cls) or ""
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


def _run_tiny_pipeline(cfg) -> None:
    from .tiny import save_tiny_pipeline

    extra = {"text_encoder_2_width": cfg.text_encoder_2_width} if cfg.arch == "sdxl" else {}
    click.echo(f"saved a tiny {cfg.arch} pipeline to {save_tiny_pipeline(cfg.arch, cfg.output_dir, cfg.seed, **extra)}")


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


@cli.command("convert-lift")
@click.argument("folders", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--lift_type", default=None, help="The lift's type, where its layout does not say (see `promptlift lifts`).")
def convert_lift(folders: tuple[Path, ...], lift_type: str | None) -> None:
    """Write lift_config.json into lift folders written before the lift format (their weights stay as they are)."""
    from .pipeline.lifts import convert_lift_folder

    for folder in folders:
        click.echo(f"{folder}: {convert_lift_folder(folder, lift_type)}")


def _run_eval(cfg) -> None:
    from .evaluation.run import evaluate

    if cfg.system:
        from .evaluation.systems import SYSTEMS_FILE, evaluate_systems

        evaluate_systems(cfg)
        click.echo(f"systems compared: {Path(cfg.output_dir) / SYSTEMS_FILE} (a run folder per set and system beside it)")
        return
    out = evaluate(cfg)
    click.echo((out / "summary.json").read_text().rstrip())
    click.echo(f"run folder: {out} (report.html, summary.json, scores.jsonl)")


def _run_compare(cfg) -> None:
    from .evaluation.compare import compare

    from .files import json_text

    click.echo(json_text(compare(cfg), indent=2))


def _run_memory(cfg) -> None:
    from .memory import estimate, format_estimate

    click.echo(format_estimate(estimate(cfg)))


def _run_calibrate(cfg) -> None:
    from .hardware.calibrate import calibrate

    calibrate(cfg)


def _run_check(cfg) -> None:
    from .hardware.check import check

    check(cfg)
    click.echo(f"written: {Path(cfg.output_dir) / 'gpu_check.json'} and gpu_check.md")


def _memory_group() -> click.Command:
    """`promptlift memory [OPTIONS]` projects a training step's memory (the options are MemoryConfig's);
    `promptlift memory calibrate` measures the points the projection is fitted on, `promptlift memory check` checks it
    on this device."""
    estimate = COMMANDS["memory"].build("memory")

    def callback(**values: Any) -> None:
        if click.get_current_context().invoked_subcommand is None:
            estimate.callback(**values)

    return LazyGroup("memory", params=estimate.params, callback=callback, invoke_without_command=True,
                     help=estimate.help, short_help=estimate.short_help,
                     lazy=lambda: _lazy_commands(MEMORY_COMMANDS))


def _run_export(cfg) -> None:
    from .evaluation.export import export_run

    click.echo(f"wrote {export_run(cfg)}")


def _run_export_lora(cfg) -> None:
    from .export.lora import export_lora

    path, note = export_lora(cfg)
    click.echo(f"wrote {path} ({note})")


def _run_export_checkpoint(cfg) -> None:
    from .export.checkpoint import export_checkpoint

    path = export_checkpoint(cfg)
    click.echo(f"wrote {path} ({cfg.dtype}) and its card {path.with_suffix('.md')}")


def _run_comfyui_install(cfg) -> None:
    from .comfyui.install import install, python_note

    click.echo(f"installed the node pack: {install(cfg)}; restart ComfyUI. {python_note()}")


def _run_curate(cfg) -> None:
    from .data.curation import curate

    out = curate(cfg)
    click.echo(f"curated set, decisions.jsonl and report.html in {out}")


def _run_serve(cfg) -> None:
    from .app.server import serve

    click.echo(f"promptlift app on http://{cfg.host}:{cfg.port} (Ctrl+C stops it)")
    serve(cfg)


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


def _method_command(name: str) -> click.Command:
    from .methods import METHODS

    def run(cfg) -> None:
        from .methods import METHODS

        out = METHODS[name].train(cfg)
        kept = [f"{folder}/" + (" (best held-out)" if folder == "best" else "") for folder in ("best", "final")
                if (out / folder).is_dir()]
        click.echo(f"{name} run in {out}: trained weights in {' and '.join(kept) or 'no folder (no evaluation kept one)'}")

    return config_command(name, METHODS[name].config, run)


def _method_commands() -> dict[str, tuple[str, Callable[[], click.Command]]]:
    """`promptlift train NAME` for every registered method (registering one loads its config, not its trainer)."""
    from .methods import METHODS

    return {name: (spec.help, functools.partial(_method_command, name)) for name, spec in METHODS.items()}


@cli.group("train", cls=LazyGroup, lazy=_method_commands)
def train() -> None:
    """Train a method (each takes --config FILE.yaml and --key value overrides)."""


def _run_sur_triples(cfg) -> None:
    from .methods.sur_adapter.triples import build_triples

    out = build_triples(cfg)
    click.echo(f"triples in {out} (decisions.jsonl says why each input was kept or dropped)")


@cli.command("rewards")
def list_rewards() -> None:
    """List the registered rewards (for `--rewards` and `--judge`)."""
    from .rewards import reward_specs

    for spec in reward_specs():
        tag = " [evaluation only]" if spec.eval_only else ""
        click.echo(f"{spec.name:24s} {spec.help}{tag}")


@cli.command("prompt-sets")
def list_prompt_sets() -> None:
    """List the named prompt sets (for `--prompts`)."""
    from .data import prompt_set_specs

    for spec in prompt_set_specs():
        click.echo(f"{spec.name:22s} {spec.help}")


@cli.group("world", cls=LazyGroup, lazy=lambda: _lazy_commands(WORLD_COMMANDS))
def world() -> None:
    """The procedural world: render scenes, build datasets and prompt sets, measure it."""


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

    from .files import json_text

    click.echo(json_text(world_stats(cfg), indent=2))


def _run_train_bundle(cfg) -> None:
    from .recipes.bundle import train_bundle

    from .files import json_text

    click.echo(json_text(train_bundle(cfg), indent=2))


@dataclass(frozen=True)
class Command:
    """A command built from its config dataclass ("module:Class", imported when the command is first listed or used:
    config modules import neither torch nor diffusers; its docstring is the help): an option per field (`arguments`
    positional), then `run(cfg)` does the work and reports."""

    config: str
    run: Callable[[Any], None]
    arguments: tuple[str, ...] = ()

    def config_class(self) -> type:
        module, _, cls = self.config.partition(":")
        return getattr(importlib.import_module(module), cls)

    def build(self, name: str) -> click.Command:
        return config_command(name, self.config_class(), self.run, arguments=self.arguments)

    @property
    def short_help(self) -> str:
        """The first line of the config's docstring."""
        return (inspect.getdoc(self.config_class()) or "").split("\n")[0]


def _lazy_commands(commands: dict[str, Command]) -> LazyCommands:
    return {name: (command.short_help, functools.partial(command.build, name)) for name, command in commands.items()}


COMMANDS = {  # promptlift NAME
    "generate": Command("promptlift.sampling:GenerateConfig", _run_generate, ("prompt",)),
    "eval": Command("promptlift.evaluation.config:EvalConfig", _run_eval),
    "compare": Command("promptlift.evaluation.config:CompareConfig", _run_compare, ("run_a", "run_b")),
    "curate": Command("promptlift.data.config:CurateConfig", _run_curate),
    "refine": Command("promptlift.methods.refiner.config:RefineConfig", _run_refine, ("prompt",)),
    "serve": Command("promptlift.app.config:ServeConfig", _run_serve),
    "sur-triples": Command("promptlift.methods.sur_adapter.config:TriplesConfig", _run_sur_triples),
    "tiny-pipeline": Command("promptlift.tiny:TinyPipelineConfig", _run_tiny_pipeline),
    "memory": Command("promptlift.memory.estimate:MemoryConfig", _run_memory),
}
WORLD_COMMANDS = {  # promptlift world NAME
    "train-bundle": Command("promptlift.recipes.bundle.config:BundleConfig", _run_train_bundle),
    "render": Command("promptlift.world.config:RenderConfig", _run_world_render),
    "dataset": Command("promptlift.world.config:DatasetConfig", _run_world_dataset),
    "prompts": Command("promptlift.world.config:PromptSetConfig", _run_world_prompts),
    "contact-sheet": Command("promptlift.world.config:ContactSheetConfig", _run_world_contact_sheet),
    "stats": Command("promptlift.world.config:StatsConfig", _run_world_stats),
}
EXPORT_COMMANDS = {  # promptlift export NAME
    "lora": Command("promptlift.export.config:ExportLoraConfig", _run_export_lora, ("source",)),
    "checkpoint": Command("promptlift.export.checkpoint:ExportCheckpointConfig", _run_export_checkpoint, ("output",)),
    "run": Command("promptlift.evaluation.config:ExportConfig", _run_export, ("run",)),
}
COMFYUI_COMMANDS = {  # promptlift comfyui NAME
    "install": Command("promptlift.comfyui.install:InstallConfig", _run_comfyui_install, ("comfyui_dir",)),
}
MEMORY_COMMANDS = {  # promptlift memory NAME
    "calibrate": Command("promptlift.hardware.calibrate:CalibrateConfig", _run_calibrate),
    "check": Command("promptlift.hardware.check:CheckConfig", _run_check),
}
cli.lazy.update(_lazy_commands(COMMANDS))
cli.lazy["memory"] = (cli.lazy["memory"][0], _memory_group)


@cli.group("export", cls=LazyGroup, lazy=lambda: _lazy_commands(EXPORT_COMMANDS))
def export() -> None:
    """Write outputs in other tools' formats: a kohya/A1111 LoRA, a single-file checkpoint, an eval run's images."""


@cli.group("comfyui", cls=LazyGroup, lazy=lambda: _lazy_commands(COMFYUI_COMMANDS))
def comfyui() -> None:
    """promptlift's nodes in ComfyUI: `promptlift comfyui install COMFYUI_DIR`."""


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the `promptlift` console script."""
    if int(os.environ.get("RANK", 0)) > 0:  # under `accelerate launch` / `torchrun` the main process reports; errors still show
        sys.stdout = open(os.devnull, "w")
    cli.main(args=list(argv) if argv is not None else None, prog_name="promptlift")
