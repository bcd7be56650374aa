"""What a run records of itself (date, commit, command, machine), the cache runs share, and the lock on a run folder."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["RunLock", "cache_dir", "run_record"]


def run_record(argv: list[str] | None = None) -> dict:
    """What a results file records of the run that wrote it: the UTC date, the commit (`+dirty` with uncommitted
    changes; None outside a git checkout), the command line and the machine (CPU, threads, memory, GPU, and the
    processes of a `torchrun` / `accelerate launch`)."""
    import datetime
    import platform
    import shlex
    import subprocess
    import sys

    import torch

    root = Path(__file__).resolve().parents[2]

    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    commit = git("rev-parse", "--short=10", "HEAD")
    if commit and git("status", "--porcelain", "--untracked-files=no"):
        commit += "+dirty"
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") if hasattr(os, "sysconf") else None
    machine = {"cpu": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
               "torch_threads": torch.get_num_threads(), "memory_gib": round(memory / 2**30, 1) if memory else None,
               "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
               "torch": torch.__version__, "python": platform.python_version(),
               "processes": int(os.environ.get("WORLD_SIZE", 1))}
    argv = list(sys.argv if argv is None else argv)
    if argv and Path(argv[0]).name in ("__main__.py", "promptlift") and Path(argv[0]).parent.name in ("promptlift", "bin"):
        argv[0] = "promptlift"  # `python -m promptlift` and the console script, as a user types either
    return {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "commit": commit,
            "command": shlex.join(argv), "machine": machine}


def cache_dir() -> Path:
    """Where promptlift keeps what runs can share (the base model's held-out scores): $PROMPTLIFT_CACHE, else
    $XDG_CACHE_HOME/promptlift, else ~/.cache/promptlift."""
    if os.environ.get("PROMPTLIFT_CACHE"):
        return Path(os.environ["PROMPTLIFT_CACHE"]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser() / "promptlift"


class RunLock:
    """An exclusive lock on a run folder (its `.lock` file) held by this process: a second process given the same
    folder is refused, and a killed process leaves nothing stuck (the system drops a dead process's lock)."""

    _held: dict[Path, "RunLock"] = {}  # by folder: the same process may take its own folder's lock again

    def __init__(self, folder: Path, name: str = "output_dir"):
        self.folder, self.file = Path(folder).resolve(), None
        if self.folder in RunLock._held:
            return
        try:
            import fcntl
        except ImportError:  # no POSIX locks (Windows): unlocked, as before
            return
        self.file = open(self.folder / ".lock", "a+")
        try:
            fcntl.flock(self.file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self.file.seek(0)
            pid = self.file.read().strip() or "?"
            self.file.close()
            raise ValueError(f"`{name}` {str(folder)!r} is in use by another process (pid {pid}); wait for it to "
                             f"finish, or pass another {name}.") from None
        self.file.seek(0)
        self.file.truncate()
        self.file.write(str(os.getpid()))
        self.file.flush()
        RunLock._held[self.folder] = self

    def release(self) -> None:
        if self.file is not None:
            RunLock._held.pop(self.folder, None)
            self.file.close()  # closing drops the lock
            self.file = None

    def __enter__(self) -> "RunLock":
        return self

    def __exit__(self, *exc) -> None:
        self.release()
