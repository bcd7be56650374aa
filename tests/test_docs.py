"""Every `promptlift ...` command shown in README.md and docs/ parses through the CLI (an unknown option or command
fails here, before a reader meets it), and the CLI reference the docs build generates covers every command."""

import re
import shlex
import sys
from pathlib import Path

import click
import pytest

from promptlift.cli import cli

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def shell_blocks(text: str) -> list[str]:
    """The page's fenced code blocks in a shell language (or none named)."""
    blocks, current, language = [], None, None
    for line in text.splitlines():
        fence = re.match(r"\s*```\s*([\w+-]*)", line)
        if fence and current is None:
            current, language = [], fence.group(1)
        elif fence:
            if language in ("", "bash", "sh", "shell", "console"):
                blocks.append("\n".join(current))
            current = None
        elif current is not None:
            current.append(line)
    return blocks


def without_substitutions(line: str) -> str:
    """`$(...)` command substitutions (nested parentheses too) replaced by one word: the value the shell passes."""
    out, i = [], 0
    while (start := line.find("$(", i)) >= 0:
        depth, j = 0, start + 1
        while j < len(line):
            depth += {"(": 1, ")": -1}.get(line[j], 0)
            if depth == 0:
                break
            j += 1
        out += [line[i:start], "VALUE"]
        i = j + 1
    return "".join(out) + line[i:]


def shown_commands(text: str) -> list[list[str]]:
    """The promptlift command lines of the page's shell blocks (continuation lines joined), as argument lists."""
    commands = []
    for block in shell_blocks(text):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.strip().removeprefix("$ ").removeprefix(".venv/bin/")
            if line.startswith("promptlift "):
                commands.append(shlex.split(without_substitutions(line), comments=True)[1:])
    return commands


def parse(args: list[str]) -> click.Command:
    """Parse `promptlift ARGS` down to the command that would run, without running it."""
    ctx = cli.make_context("promptlift", list(args))
    command = cli
    while isinstance(command, click.Group):
        rest = [*ctx._protected_args, *ctx.args] if hasattr(ctx, "_protected_args") else [*ctx.protected_args, *ctx.args]
        if not rest:
            return command
        name, command, rest = command.resolve_command(ctx, rest)
        ctx = command.make_context(name, rest, parent=ctx)
    return command


CASES = [(page, args) for page in PAGES for args in shown_commands(page.read_text())]


def test_the_pages_show_commands():
    assert len(CASES) >= 20, "the README and docs show the commands people run"


@pytest.mark.parametrize("page,args", CASES, ids=[f"{p.relative_to(ROOT)}:{' '.join(a[:2])}" for p, a in CASES])
def test_every_shown_command_parses(page, args):
    try:
        parse(args)
    except click.exceptions.Exit as e:  # --help, --version
        assert e.exit_code == 0
    except click.ClickException as e:
        pytest.fail(f"{page.relative_to(ROOT)}: `promptlift {' '.join(args)}`: {e.format_message()}")


def inline_commands(text: str) -> list[list[str]]:
    """The `promptlift ...` commands the page's prose quotes in backticks (a span may wrap lines; `;` and `&&` join
    two), as argument lists."""
    prose = re.sub(r"```.*?```", "", text, flags=re.S).replace("\n", " ")
    commands = []
    for span in re.findall(r"`(?:\.venv/bin/)?promptlift ([^`]+)`", prose):
        for part in re.split(r";|&&", span):
            part = part.strip().removeprefix("promptlift ")
            try:
                commands.append(shlex.split(without_substitutions(part)))
            except ValueError:  # an unbalanced quote in prose: not a command line
                continue
    return commands


def check_inline(args: list[str]) -> None:
    """The command path exists and every `--option` is one of that command's; values, arguments and placeholders
    (NAME, a|b) are a sentence's, not checked."""
    command, ctx = cli, click.Context(cli, info_name="promptlift")
    args = list(args)
    while isinstance(command, click.Group) and args and not args[0].startswith("-"):
        name = args.pop(0)
        if name.isupper() or "|" in name or name in ("...", "…"):
            return
        sub = command.get_command(ctx, name)
        if sub is None:
            raise AssertionError(f"no command `{name}` under `{ctx.command_path}`")
        command, ctx = sub, click.Context(sub, info_name=name, parent=ctx)
    options = {o for p in command.get_params(ctx) for o in (*p.opts, *p.secondary_opts)}
    unknown = [a.partition("=")[0] for a in args if a.startswith("--") and a.partition("=")[0] not in options]
    assert not unknown, f"`{ctx.command_path}` has no option {', '.join(unknown)}"


# the changelog quotes commands as they were
INLINE = [(page, args) for page in PAGES if page.name != "changelog.md" for args in inline_commands(page.read_text())]


def test_the_pages_quote_commands_in_their_prose():
    assert len(INLINE) >= 40


@pytest.mark.parametrize("page,args", INLINE, ids=[f"{p.relative_to(ROOT)}:{' '.join(a[:2])}" for p, a in INLINE])
def test_every_command_quoted_in_prose_names_real_options(page, args):
    try:
        check_inline(args)
    except AssertionError as e:
        pytest.fail(f"{page.relative_to(ROOT)}: `promptlift {' '.join(args)}`: {e}")


def test_a_wrong_inline_option_is_caught():
    with pytest.raises(AssertionError, match="has no option --prompt"):
        check_inline(["eval", "--prompt", "x.txt"])
    with pytest.raises(AssertionError, match="no command `evaluate`"):
        check_inline(["evaluate"])
    check_inline(["train", "NAME", "--anything"])
    check_inline(["memory", "calibrate", "--table"])


def test_a_wrong_option_is_caught():
    with pytest.raises(click.UsageError, match="unknown option"):
        parse(["eval", "--prompt", "x.txt"])
    parse(["eval", "--prompts", "x.txt", "--lifted"])


def test_the_cli_reference_covers_every_command():
    sys.path.insert(0, str(ROOT / "docs" / "hooks"))
    try:
        import cli_reference
    finally:
        sys.path.pop(0)
    page = cli_reference.markdown()
    ctx = click.Context(cli, info_name="promptlift")
    for name in cli.list_commands(ctx):
        assert f"`promptlift {name}`" in page
    assert "`--train_data_dir`" in page and "Held-out prompts per pipeline call" in page


def test_the_report_pages_and_the_readme_table_are_what_their_results_files_give():
    """A number in a report page or the README's results table comes from a results file: the committed pages are
    exactly what scripts/make_reports.py writes from them (re-measuring rewrites the file, then the page)."""
    import subprocess

    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "make_reports.py"), "--check"], capture_output=True,
                            text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]


def test_the_quickstart_shows_the_commands_the_readme_runs():
    """docs/quickstart.md's own-model commands are the README's, which tests/test_readme.py runs as written."""
    block = [b for b in shell_blocks((ROOT / "README.md").read_text()) if b.startswith("# a stand-in")]
    assert block and block[0] in shell_blocks((ROOT / "docs" / "quickstart.md").read_text())


def test_the_readme_is_a_landing_page():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 300
    for paper in ("2305.05189", "2403.18978", "2402.12760", "2309.15807"):
        assert f"https://arxiv.org/abs/{paper}" in text
    assert "@inproceedings" in text and "LICENSE" in text and "make test" in text
