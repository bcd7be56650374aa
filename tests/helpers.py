"""What the test files share: the promptlift command line run in-process."""

import os

from click.testing import CliRunner

from promptlift.cli import cli


def run_cli(*args, catch_exceptions: bool = False, **kwargs):
    """`promptlift ARGS...` in-process, every argument as a string; returns click's Result (exit_code, output)."""
    debug = ["--debug"] if os.environ.get("PROMPTLIFT_TEST_DEBUG") else []
    return CliRunner().invoke(cli, debug + [str(a) for a in args], catch_exceptions=catch_exceptions, **kwargs)
