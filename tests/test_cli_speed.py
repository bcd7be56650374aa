"""`--help` without torch: every command's options come from its config dataclass, and every config lives in a module
that imports neither torch nor diffusers (the packages import lazily), so reading them is quick. How quick is
benchmarks/cli_help.py's to measure (a ratio against `python -c pass`), not a timed test's."""

import importlib
import subprocess
import sys

from promptlift import cli as C

COMMANDS = [*C.COMMANDS.values(), *C.WORLD_COMMANDS.values(), *C.EXPORT_COMMANDS.values(), *C.MEMORY_COMMANDS.values()]


def test_every_config_module_imports_neither_torch_nor_diffusers():
    """Each command's config module, and each method's, imported alone in a fresh process."""
    from promptlift.methods import METHODS

    modules = sorted({c.config.partition(":")[0] for c in COMMANDS} | {s.config.__module__ for s in METHODS.values()})
    code = ("import importlib, sys\n"
            f"for module in {modules!r}:\n"
            "    importlib.import_module(module)\n"
            "    heavy = sorted(m for m in ('torch', 'diffusers', 'transformers') if m in sys.modules)\n"
            "    assert not heavy, (module, heavy)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    for module in modules:  # and each holds its config (no name drift between the table and the modules)
        importlib.import_module(module)
    for command in COMMANDS:
        assert isinstance(command.config_class(), type)


def test_every_help_loads_neither_torch_nor_diffusers():
    from promptlift.methods import METHODS

    commands = [[], *[[name] for name in C.COMMANDS], *[["world", name] for name in C.WORLD_COMMANDS],
                *[["export", name] for name in C.EXPORT_COMMANDS], *[["memory", name] for name in C.MEMORY_COMMANDS],
                *[["train", name] for name in METHODS]]
    code = ("import sys\nfrom click.testing import CliRunner\nfrom promptlift.cli import cli\n"
            f"for args in {commands!r}:\n"
            "    result = CliRunner().invoke(cli, [*args, '--help'])\n"
            "    assert result.exit_code == 0 and 'Usage:' in result.output, (args, result.output)\n"
            "heavy = sorted(m for m in ('torch', 'diffusers', 'transformers') if m in sys.modules)\n"
            "print(','.join(heavy) or 'none')\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "none"
