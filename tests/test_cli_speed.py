"""`--help` without torch: the CLI reads every command's options from its config's source, and those are the fields
of the imported dataclass (one definition, no drift)."""

import importlib
import inspect
import subprocess
import sys

import pytest

from promptlift import cli as C
from promptlift.config import config_fields
from promptlift.config_source import source_config_fields, source_docstring, source_registered_methods

CONFIGS = sorted({tuple(c.config.split(":")) for c in (*C.COMMANDS.values(), *C.WORLD_COMMANDS.values(),
                                                        *C.EXPORT_COMMANDS.values())}
                 | {(m, c) for m, c, _ in source_registered_methods().values()})


@pytest.mark.parametrize("module, cls", CONFIGS, ids=[c for _, c in CONFIGS])
def test_the_source_read_fields_are_the_dataclass_fields(module, cls):
    real = getattr(importlib.import_module(module), cls)
    assert source_config_fields(module, cls) == config_fields(real)
    assert source_docstring(module, cls) == inspect.cleandoc(real.__doc__ or "")


def test_the_registered_methods_are_the_ones_the_source_lists():
    from promptlift.methods import METHODS

    found = source_registered_methods()
    assert set(found) == set(METHODS)
    for name, (module, cls, help) in found.items():
        assert (METHODS[name].config.__module__, METHODS[name].config.__name__, METHODS[name].help) == (module, cls, help)


def test_every_help_loads_neither_torch_nor_diffusers():
    commands = [[], *[[name] for name in C.COMMANDS], *[["world", name] for name in C.WORLD_COMMANDS],
                *[["export", name] for name in C.EXPORT_COMMANDS], *[["train", name] for name in source_registered_methods()]]
    code = ("import sys\nfrom click.testing import CliRunner\nfrom promptlift.cli import cli\n"
            f"for args in {commands!r}:\n"
            "    result = CliRunner().invoke(cli, [*args, '--help'])\n"
            "    assert result.exit_code == 0 and 'Usage:' in result.output, (args, result.output)\n"
            "heavy = sorted(m for m in ('torch', 'diffusers', 'transformers') if m in sys.modules)\n"
            "print(','.join(heavy) or 'none')\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "none"
