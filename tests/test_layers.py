"""The package imports one way: every module imports only from its own layer or the layers below it (imports inside
functions count), as docs/architecture.md (Layers) and docs/contributing.md (Layout) describe."""

import ast
import subprocess
import sys
from pathlib import Path

import promptlift

ROOT = Path(promptlift.__file__).parent
# bottom to top; a unit is a top-level module or package of promptlift
LAYERS = [
    {"__init__", "_notices", "_lazy", "files", "runs", "devices", "images", "hub", "config", "registry", "stats",
     "html", "profiles"},
    {"rewards"},
    {"data"},
    {"pipeline", "tiny"},
    {"training", "export", "memory"},
    {"methods"},
    {"generation", "sampling", "comfyui"},
    {"evaluation"},
    # the test world, a plug-in on top of the core: it registers its prompt sets, judges, profile and embedded model
    {"world"},
    {"judges"},  # the world's judges and the plug-in that registers both
    {"recipes", "hardware"},
    {"app", "cli", "__main__"},
]
LEVEL = {unit: i for i, layer in enumerate(LAYERS) for unit in layer}


def _imports(path: Path):
    """(line, imported promptlift module) of every import in `path`, relative ones resolved. What a module imports for
    type checkers alone (`if TYPE_CHECKING:`) never runs and does not count: the package's `__init__`, the facade of
    the public API, names every export that way (they resolve lazily), and a registry names the type it holds."""
    module = ".".join(path.relative_to(ROOT.parent).with_suffix("").parts)
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    package = package.removesuffix(".__init__")
    tree = ast.parse(path.read_text(encoding="utf-8"))
    typing_only = {id(n) for block in ast.walk(tree) if isinstance(block, ast.If)
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


# inside pipeline/, bottom to top: the lift contract sits on the lift format it reads and writes, one orchestrator
# (lifted) on top of the rest, loading (a pipeline, lifted if asked) above it
PIPELINE = ["lift_registry", "lift_config", "base_model", "cards", "contract", "prompts", "lifts", "stack", "lifted",
            "loading", "__init__"]


def test_the_pipeline_package_has_no_import_circle():
    upward = []
    folder = ROOT / "pipeline"
    assert {p.stem for p in folder.glob("*.py")} == set(PIPELINE), "give each pipeline module its place in PIPELINE"
    for path in sorted(folder.glob("*.py")):
        for line, target in _imports(path):
            parts = target.split(".")
            if parts[:2] != ["promptlift", "pipeline"] or len(parts) < 3:
                continue
            if PIPELINE.index(parts[2]) >= PIPELINE.index(path.stem):
                upward.append(f"pipeline/{path.name}:{line} imports {target}")
    assert not upward, "imports up (or around) the pipeline's order:\n" + "\n".join(upward)


def test_the_core_loads_no_world_module():
    """`import promptlift.pipeline` (and the rest of the core) loads nothing of the world, its judges or its recipes:
    they are a plug-in the registries load when first read."""
    code = ("import sys, promptlift.pipeline, promptlift.methods, promptlift.evaluation.run, promptlift.rewards, "
            "promptlift.data; print(sorted(m for m in sys.modules if m.split('.')[:2] in "
            "(['promptlift', 'world'], ['promptlift', 'judges'], ['promptlift', 'recipes'])))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", f"the core imported world modules: {out}"


def test_the_world_registers_through_the_plugin_entry_point():
    """The registries read, the world's prompt sets, rewards, profile and embedded model are there; the embedded
    model is the one its own promptlift.json declares so."""
    from promptlift.data import prompt_set_specs
    from promptlift.pipeline import default_model_path, is_embedded_model
    from promptlift.profiles import judge_defaults, model_profile
    from promptlift.rewards import reward_specs

    assert "world-narrative-val" in {s.name for s in prompt_set_specs()}
    assert "world-aesthetic" in {s.name for s in reward_specs()}
    assert default_model_path() is not None and is_embedded_model(None) and is_embedded_model(str(default_model_path()))
    assert model_profile(None).name == "world" and judge_defaults(None).eval_prompts == "world-narrative-val"
