"""mkdocs hook: the CLI reference page, generated at build time from the click commands, whose options come from the
config dataclasses' field metadata (the one copy of every help text)."""

from __future__ import annotations

import click
from mkdocs.structure.files import File

PAGE = "reference/cli.md"


def _rows(command: click.Command) -> list[str]:
    rows = ["| option | help |", "|---|---|"]
    for param in command.params:
        if not isinstance(param, click.Option) or param.hidden:
            continue
        names = ", ".join(f"`{o}`" for o in [*param.opts, *param.secondary_opts] if o.startswith("-"))
        text = (param.help or "").replace("|", "\\|").replace("\n", " ")
        rows.append(f"| {names} | {text} |")
    return rows


def _section(command: click.Command, path: list[str], ctx: click.Context) -> list[str]:
    name = " ".join(path)
    lines = [f"{'#' * min(len(path), 4)} `{name}`", ""]
    doc = (command.help or "").strip()
    if doc:
        lines += [doc, ""]
    arguments = [p.name for p in command.params if isinstance(p, click.Argument)]
    if arguments:
        lines += ["Arguments: " + ", ".join(f"`{a.upper()}`" for a in arguments), ""]
    if isinstance(command, click.Group):
        for sub in command.list_commands(ctx):
            child = command.get_command(ctx, sub)
            lines += _section(child, [*path, sub], click.Context(child, parent=ctx, info_name=sub))
        return lines
    options = _rows(command)
    if len(options) > 2:
        lines += options + [""]
    return lines


def markdown() -> str:
    from promptlift.cli import cli

    ctx = click.Context(cli, info_name="promptlift")
    head = ["# CLI reference", "",
            "Generated from the commands themselves (every option's help is its config field's `help`); "
            "`promptlift COMMAND --help` prints the same. Any option is also a key of the YAML file given by "
            "`--config`.", ""]
    return "\n".join(head + _section(cli, ["promptlift"], ctx)[2:]) + "\n"


def on_files(files, config):
    files.append(File.generated(config, PAGE, content=markdown()))
    return files
