"""Small helpers every part shares: atomic file output, output folders, devices and dtypes."""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, TypeVar

import torch

__all__ = [
    "RunLock",
    "cache_dir",
    "atomic_dir",
    "image_grid",
    "prefetch",
    "images_to_tensor",
    "atomic_path",
    "atomic_write_json",
    "atomic_write_text",
    "check_device",
    "default_font",
    "json_text",
    "read_utf8",
    "ensure_output_dir",
    "default_device",
    "default_dtype",
    "resolve_dtype",
    "run_record",
    "usual_permissions",
]


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


def run_record(argv: list[str] | None = None) -> dict:
    """What a results file records of the run that wrote it: the UTC date, the commit (`+dirty` with uncommitted
    changes; None outside a git checkout), the command line and the machine (CPU, threads, memory, GPU, and the
    processes of a `torchrun` / `accelerate launch`)."""
    import datetime
    import platform
    import shlex
    import subprocess
    import sys

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


def check_device(device: str | torch.device) -> torch.device:
    """`device` as a torch device, refused with the fix when this machine or torch build cannot run on it."""
    try:
        device = torch.device(device)
    except RuntimeError:
        raise ValueError(f"`device` {device!r} is not a device name; use cpu, cuda, cuda:1 or mps.") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"`device` {str(device)!r} asked for, but this torch build or machine has no CUDA; use "
                         "--device cpu (or install a CUDA build of torch).")
    if device.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ValueError(f"`device` {str(device)!r} asked for, but MPS is not available here; use --device cpu.")
    return device


def default_device() -> torch.device:
    """CUDA when present, then Apple MPS, else CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def launched_on_cpus() -> bool:
    """True when the processes of a launch run on CPUs: `ACCELERATE_USE_CPU` is set, or a multi-process launch
    (`accelerate launch`, `torchrun`) finds no CUDA. accelerate must then be told, or each process would be its own
    rank 0 instead of joining a gloo process group."""
    if os.environ.get("ACCELERATE_USE_CPU", "").lower() in ("1", "true", "yes"):
        return True
    launched = int(os.environ.get("LOCAL_RANK", -1)) != -1 or int(os.environ.get("WORLD_SIZE", 1)) > 1
    return launched and not torch.cuda.is_available()


def distributed_state():
    """accelerate's `PartialState` of this launch (one process, or one per rank under `accelerate launch` / `torchrun`,
    with NCCL on GPUs and gloo on CPUs)."""
    from accelerate import PartialState

    return PartialState(cpu=launched_on_cpus())


def default_dtype(device: torch.device) -> torch.dtype:
    """fp32 on CPU; fp16 on CUDA and MPS (the Stable Diffusion inference convention)."""
    return torch.float32 if device.type == "cpu" else torch.float16


_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def resolve_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    """`"auto"`/None -> the device's default; a name -> the torch dtype; half precision on CPU is refused."""
    if dtype is None or dtype == "auto":
        return default_dtype(device)
    if isinstance(dtype, str):
        if dtype not in _DTYPES:
            raise ValueError(f"`dtype` must be one of {['auto', *_DTYPES]}, got {dtype!r}.")
        dtype = _DTYPES[dtype]
    if device.type == "cpu" and dtype == torch.float16:
        raise ValueError("`dtype` float16 is not supported on CPU; use float32 (or bfloat16).")
    return dtype


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


def image_grid(images, cols: int = 8, scale: int = 1):
    """A PIL grid of images given as a (N, 3, H, W) [0, 1] tensor or a list of PIL images."""
    from PIL import Image

    if isinstance(images, torch.Tensor):
        arr = (images.clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).cpu().numpy()
        images = [Image.fromarray(a) for a in arr]
    w, h = images[0].size
    rows = (len(images) + cols - 1) // cols
    grid = Image.new("RGB", (cols * w * scale, rows * h * scale), (255, 255, 255))
    for i, im in enumerate(images):
        grid.paste(im.resize((w * scale, h * scale), Image.NEAREST), ((i % cols) * w * scale, (i // cols) * h * scale))
    return grid


def images_to_tensor(images) -> torch.Tensor:
    """PIL images -> (B, 3, H, W) float in [0, 1]; images of another size are resized to the first one's."""
    import numpy as np

    size = images[0].size
    arr = np.stack([np.array(im.convert("RGB").resize(size) if im.size != size else im.convert("RGB")) for im in images])
    return torch.from_numpy(arr).permute(0, 3, 1, 2).float().div_(255.0)


T = TypeVar("T")
R = TypeVar("R")


def prefetch(items: Iterable[T], fn: Callable[[T], R], depth: int = 128) -> Iterator[R]:
    """`fn(item)` for every item, in order, computed by a background thread up to `depth` items ahead.

    For reading and decoding (PIL and file I/O release the GIL) while the caller runs a model. An exception in
    the thread is raised in the caller at the item that caused it; leaving the loop early stops the thread.
    """
    import queue
    import threading

    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def work():
        try:
            for item in items:
                if stop.is_set():
                    return
                q.put((True, fn(item)))
        except BaseException as e:  # handed to the caller, raised there
            q.put((False, e))
        q.put((True, done))

    thread = threading.Thread(target=work, name="promptlift-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            ok, value = q.get()
            if not ok:
                raise value
            if value is done:
                return
            yield value
    finally:
        stop.set()
        while thread.is_alive():  # unblock a producer waiting on a full queue
            try:
                q.get_nowait()
            except queue.Empty:
                thread.join(0.01)


def default_font(size: int):
    """Pillow's default font at `size` (one bitmap size before Pillow 10.1), for labelled sheets."""
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:
        return ImageFont.load_default()


def load_hub_mixin(cls, folder: str | Path, **kwargs):
    """`cls.from_pretrained(folder)` for a huggingface_hub `PyTorchModelHubMixin` class, without the line "Loading
    weights from local directory" the mixin prints on every load from a folder."""
    with contextlib.redirect_stdout(io.StringIO()):
        return cls.from_pretrained(folder, **kwargs)
