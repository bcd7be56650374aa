"""The package imports one way: every module imports only from its own layer or the layers below it (imports inside
functions count), as docs/architecture.md (Layers) and docs/contributing.md (Layout) describe."""

import ast
from pathlib import Path

import promptlift

ROOT = Path(promptlift.__file__).parent
# bottom to top; a unit is a top-level module or package of promptlift
LAYERS = [
    {"__init__", "_notices", "utils", "config", "config_source", "registry", "stats", "html"},
    {"world"},
    {"judges"},
    {"rewards"},
    {"data"},
    {"pipeline", "tiny"},
    {"training", "export", "memory"},
    {"methods"},
    {"generation"},
    {"evaluation"},
    {"recipes"},
    {"app", "cli", "__main__"},
]
LEVEL = {unit: i for i, layer in enumerate(LAYERS) for unit in layer}


def _imports(path: Path):
    """(line, imported promptlift module) of every import in `path`, relative ones resolved. The package's own
    `__init__` is the facade of the public API: what it imports for type checkers alone (`if TYPE_CHECKING:`, never
    run; its names resolve lazily) does not count."""
    module = ".".join(path.relative_to(ROOT.parent).with_suffix("").parts)
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    package = package.removesuffix(".__init__")
    tree = ast.parse(path.read_text(encoding="utf-8"))
    typing_only = {id(n) for block in ast.walk(tree) if path == ROOT / "__init__.py" and isinstance(block, ast.If)
                   and isinstance(block.test, ast.Name) and block.test.id == "TYPE_CHECKING" for n in ast.walk(block)}
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level:
            base = package.split(".")[: len(package.split(".")) - node.level + 1]
            names = [".".join(base + ([node.module] if node.module else []))]
            if not node.module:  # `from . import a, b`: the submodules (or the package, for its attributes)
                names = [".".join(base + [a.name]) if _is_module(base + [a.name]) else ".".join(base)
                         for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module]
        else:
            continue
        yield from ((node.lineno, n) for n in names if n == "promptlift" or n.startswith("promptlift."))


def _is_module(parts: list[str]) -> bool:
    path = ROOT.parent.joinpath(*parts)
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _unit(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def test_every_unit_has_a_layer():
    units = {p.stem if p.is_file() else p.name for p in ROOT.iterdir()
             if (p.suffix == ".py" or (p / "__init__.py").is_file())}
    assert units <= set(LEVEL), f"give these a layer in LAYERS: {sorted(units - set(LEVEL))}"


def test_imports_point_down_the_layers():
    upward = []
    for path in sorted(ROOT.rglob("*.py")):
        here = _unit(".".join(path.relative_to(ROOT.parent).with_suffix("").parts))
        for line, target in _imports(path):
            there = _unit(target)
            if LEVEL[there] > LEVEL[here]:
                upward.append(f"{path.relative_to(ROOT)}:{line} ({here}) imports {target} ({there})")
    assert not upward, "imports up the layer order:\n" + "\n".join(upward)
