"""Files written whole or not at all (a temporary name, then a rename), strict JSON, output folders."""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator

__all__ = ["atomic_dir", "atomic_path", "atomic_write_json", "atomic_write_text", "ensure_output_dir", "json_text",
           "read_utf8", "usual_permissions"]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _umask()


@contextlib.contextmanager
def atomic_path(path: str | Path, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds.

    A reader never sees a half-written file, and a failure leaves nothing behind.
    `suffix` keeps the extension for writers that read it (PIL, safetensors).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix or ".tmp")
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the file the usual permissions
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write `text` to `path` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def read_utf8(path: str | Path) -> str:
    """The text of `path`; a file that is not UTF-8 is a ValueError naming the file, the line and the fix."""
    data = Path(path).read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise ValueError(f"{path}:{line}: not UTF-8 text (byte {data[e.start]:#04x} at offset {e.start}); save the file "
                         "as UTF-8.") from None


def json_text(obj: Any, indent: int | None = None) -> str:
    """`obj` as strict JSON (RFC 8259): NaN and infinities, which `json.dumps` writes as bare words no JSON reader
    takes, become null."""
    def strict(v: Any) -> Any:
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, dict):
            return {k: strict(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [strict(x) for x in v]
        return v

    return json.dumps(strict(obj), indent=indent, allow_nan=False)


def atomic_write_json(path: str | Path, obj: Any) -> Path:
    """Write `obj` as indented strict JSON to `path` atomically."""
    return atomic_write_text(path, json_text(obj, indent=2) + "\n")


def ensure_output_dir(output_dir: str | Path, name: str = "output_dir") -> Path:
    """Create `output_dir` if needed; a path that exists as a file is an error naming the fix."""
    output_dir = Path(output_dir)
    if output_dir.exists() and not output_dir.is_dir():
        raise ValueError(f"`{name}` {str(output_dir)!r} is a file, not a folder; pass a folder path.")
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:  # a parent that is a file, no permission, a read-only disk
        raise ValueError(f"`{name}` {str(output_dir)!r} cannot be created ({e.strerror}); pass a folder you can "
                         "write to.") from None
    if not os.access(output_dir, os.W_OK):
        raise ValueError(f"`{name}` {str(output_dir)!r} is not writable; pass a folder you can write to.")
    return output_dir


def usual_permissions(folder: str | Path) -> None:
    """Give every file under `folder` the mode an ordinary write would (0666 less the umask): safetensors >= 0.8
    writes its files 0600 (safetensors#782), which leaves a model readable by its trainer alone."""
    for file in Path(folder).rglob("*"):
        if file.is_file() and not file.is_symlink():
            os.chmod(file, 0o666 & ~_UMASK)


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield a temporary folder beside `path`; it replaces `path` only if the block succeeds."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{str(path)!r} is a file; pass a folder path.")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}."))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    os.chmod(tmp, 0o777 & ~_UMASK)
    usual_permissions(tmp)
    old = path.with_name(f".{path.name}.old-{os.getpid()}")
    if path.exists():
        os.replace(path, old)
    os.replace(tmp, path)
    shutil.rmtree(old, ignore_errors=True)
