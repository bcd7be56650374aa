"""Config fields read from source, without importing the module: the CLI builds `--help` and its options from them,
so `promptlift ... --help` does not load torch. The dataclass stays the one definition; `config_fields` of the
imported class must give the same fields (tests/test_cli_speed.py checks every command's).
"""

from __future__ import annotations

import ast
import dataclasses
import functools
from pathlib import Path
from typing import Any, Literal

from .config import ConfigField

__all__ = ["SourceUnreadable", "module_file", "source_config_fields", "source_docstring", "source_registered_methods"]

_PACKAGE = Path(__file__).resolve().parent
_TYPES = {"Literal": Literal, "Path": Path, "Any": Any, "list": list, "dict": dict, "tuple": tuple, "str": str,
          "int": int, "float": float, "bool": bool, "None": None}


class SourceUnreadable(Exception):
    """A config the source reader cannot follow (the CLI then imports it)."""


def module_file(module: str) -> Path:
    """The source file of a promptlift module, found without importing it or its packages."""
    if not module.startswith("promptlift."):
        raise SourceUnreadable(module)
    path = _PACKAGE.joinpath(*module.split(".")[1:])
    for candidate in (path.with_suffix(".py"), path / "__init__.py"):
        if candidate.is_file():
            return candidate
    raise SourceUnreadable(module)


@functools.lru_cache(maxsize=None)
def _tree(module: str) -> ast.Module:
    """The parsed source of a module, once a process (bases, imports and constants read it again and again)."""
    return ast.parse(module_file(module).read_text(encoding="utf-8"))


def _resolve(module: str, name: str, depth: int = 0) -> tuple[str, ast.ClassDef]:
    """(module, class node) of `name` as `module` sees it: defined there or imported (re-exports followed)."""
    if depth > 8:
        raise SourceUnreadable(f"{module}.{name}")
    tree = _tree(module)
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == name:
            return module, node
    is_package = module_file(module).name == "__init__.py"
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and any((a.asname or a.name) == name for a in node.names):
            alias = next(a for a in node.names if (a.asname or a.name) == name)
            base = module.split(".")[: len(module.split(".")) - node.level + (1 if is_package else 0)] if node.level else []
            target = ".".join(base + ([node.module] if node.module else [])) if node.level else node.module
            return _resolve(target, alias.name, depth + 1)
    raise SourceUnreadable(f"{module}.{name}")


def _value(node: ast.AST, names: dict) -> Any:
    """A default, default_factory or metadata expression: literals, arithmetic, `Path(...)`, `list(...)`, the module's
    literal constants (`names`), or a lambda returning one of those."""
    if isinstance(node, ast.Lambda):
        node = node.body
    elif isinstance(node, ast.Name) and node.id in ("list", "dict", "tuple"):  # default_factory=list
        return {"list": [], "dict": {}, "tuple": ()}[node.id]
    try:
        code = compile(ast.Expression(node), "<config>", "eval")
        return eval(code, {"__builtins__": {}}, {"Path": Path, "list": list, "tuple": tuple, "dict": dict, **names})
    except Exception:
        raise SourceUnreadable(ast.unparse(node)) from None


def _constants(module: str, depth: int = 0) -> dict:
    """The module's top-level `NAME = literal` constants (e.g. a list a default_factory copies), and those it imports
    from promptlift modules."""
    tree, names = _tree(module), {}
    is_package = module_file(module).name == "__init__.py"
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.level and depth < 2:
            base = module.split(".")[: len(module.split(".")) - node.level + (1 if is_package else 0)]
            try:
                found = _constants(".".join(base + ([node.module] if node.module else [])), depth + 1)
            except SourceUnreadable:
                continue
            names.update({a.asname or a.name: found[a.name] for a in node.names if a.name in found})
        elif isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            try:
                names[node.targets[0].id] = _value(node.value, names)
            except SourceUnreadable:
                pass
    return names


def _field(node: ast.AnnAssign, names: dict) -> ConfigField | None:
    """The field an annotated class statement declares (None for `init=False` ones)."""
    name = node.target.id
    try:
        tp = eval(compile(ast.Expression(node.annotation), "<annotation>", "eval"), {"__builtins__": {}}, dict(_TYPES))
    except Exception:
        raise SourceUnreadable(ast.unparse(node.annotation)) from None
    default, metadata = dataclasses.MISSING, {}
    value = node.value
    if isinstance(value, ast.Call) and isinstance(value.func, ast.Name) and value.func.id == "field":
        for kw in value.keywords:
            if kw.arg in ("default", "default_factory"):
                default = _value(kw.value, names)
            elif kw.arg == "metadata":
                metadata = _value(kw.value, names)
            elif kw.arg == "init" and _value(kw.value, names) is False:
                return None
            else:
                raise SourceUnreadable(kw.arg)
    elif value is not None:
        default = _value(value, names)
    return ConfigField(name, tp, default, metadata.get("help", ""), metadata.get("min"), metadata.get("max"),
                       tuple(metadata.get("aliases", ())))


def source_config_fields(module: str, cls: str) -> dict[str, ConfigField]:
    """`config_fields` of dataclass `cls` of `module`, read from the source of it and its bases."""
    module, node = _resolve(module, cls)
    names = _constants(module)
    fields: dict[str, ConfigField] = {}
    for base in node.bases:  # dataclass order: the bases' fields first
        if not isinstance(base, ast.Name):
            raise SourceUnreadable(ast.unparse(base))
        fields.update(source_config_fields(module, base.id))
    for stmt in node.body:
        if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name) and \
                not ast.unparse(stmt.annotation).startswith("ClassVar"):
            found = _field(stmt, names)
            if found is not None:
                fields[found.name] = found
    return fields


def source_registered_methods(package: str = "promptlift.methods") -> dict[str, tuple[str, str, str]]:
    """{method: (config module, config class, help)} from the `register_method(...)` calls of each method folder."""
    methods = {}
    for folder in sorted(module_file(package).parent.iterdir()):
        if not (folder / "__init__.py").is_file():
            continue
        module = f"{package}.{folder.name}"
        for call in ast.walk(_tree(module)):
            if isinstance(call, ast.Call) and getattr(call.func, "id", None) == "register_method":
                keywords = {kw.arg: kw.value for kw in call.keywords}
                config = keywords["config"].id
                config_module, _ = _resolve(module, config)
                methods[ast.literal_eval(call.args[0])] = (config_module, config, ast.literal_eval(keywords["help"]))
    return methods


def source_docstring(module: str, cls: str) -> str:
    """The docstring of class `cls` of `module` (imported or defined there), read from source."""
    return ast.get_docstring(_resolve(module, cls)[1]) or ""
