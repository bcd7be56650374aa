"""promptlift inside ComfyUI: the node pack (nodes.py) and `promptlift comfyui install COMFYUI_DIR` (install.py), which
puts a custom_nodes/promptlift_nodes folder into a ComfyUI installation; ComfyUI then loads the nodes from this
package, so an upgrade of promptlift upgrades them."""

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(__name__, {"NODE_CLASS_MAPPINGS": ".nodes", "NODE_DISPLAY_NAME_MAPPINGS": ".nodes"})
if TYPE_CHECKING:
    from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
