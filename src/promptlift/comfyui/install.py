"""`promptlift comfyui install COMFYUI_DIR`: the node pack into a ComfyUI installation, as ComfyUI finds custom nodes
(a folder in custom_nodes/ whose __init__ exports NODE_CLASS_MAPPINGS). The folder holds one small module that imports
the nodes from this package: ComfyUI's Python must be able to import promptlift (install it there first)."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

from ..files import atomic_dir

__all__ = ["InstallConfig", "PACK_FOLDER", "install"]

PACK_FOLDER = "promptlift_nodes"  # not "promptlift": ComfyUI imports a custom node folder under its own name
PACK_INIT = '''"""promptlift's ComfyUI nodes, written by `promptlift comfyui install`: the nodes live in the promptlift package
(promptlift.comfyui.nodes), so upgrading promptlift in this ComfyUI's Python upgrades them."""

from promptlift.comfyui import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
'''


@dataclass
class InstallConfig:
    """Install promptlift's ComfyUI nodes into a ComfyUI folder.

    Writes custom_nodes/promptlift_nodes there. Run it with the Python ComfyUI runs on, where promptlift is installed: `/path/to/ComfyUI/venv/bin/python -m promptlift comfyui install
    /path/to/ComfyUI`; then restart ComfyUI."""

    comfyui_dir: Path = field(default=Path("."), metadata={"help": "The ComfyUI folder (it holds main.py and custom_nodes/)."})
    overwrite: bool = field(default=True, metadata={"help": "Replace an earlier install of the pack."})


def install(cfg: InstallConfig) -> Path:
    """Write custom_nodes/promptlift_nodes into `cfg.comfyui_dir` (atomically); returns the folder."""
    root = Path(cfg.comfyui_dir).expanduser()
    if not (root / "main.py").is_file() or not (root / "nodes.py").is_file():
        raise ValueError(f"{str(root)!r} is no ComfyUI folder (no main.py and nodes.py); pass the folder ComfyUI runs "
                         "from.")
    target = root / "custom_nodes" / PACK_FOLDER
    if target.exists() and not cfg.overwrite:
        raise ValueError(f"{str(target)!r} exists; pass --overwrite to replace it.")
    target.parent.mkdir(exist_ok=True)
    with atomic_dir(target) as tmp:
        (tmp / "__init__.py").write_text(PACK_INIT, encoding="utf-8")
    return target


def python_note() -> str:
    """Which Python the nodes will import promptlift with: this one's, if ComfyUI runs on it."""
    return f"ComfyUI must run on a Python where promptlift is installed (this one is {sys.executable})."
