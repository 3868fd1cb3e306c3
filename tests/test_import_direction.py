"""Dependencies point one way: llmcost → alerting → exporter.

`exporter` is a library that imports nothing of `alerting` or `llmcost`; `alerting` imports nothing of
`llmcost`. Every `.py` file is read as an AST, so imports inside functions count, and so do module
names handed to `importlib.import_module` or `__import__` and any string naming a module of the
forbidden packages (a string registry such as `{"budgets": "alerting.sections"}`).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator

import pytest

from tests.support.paths import REPO

FORBIDDEN = {"exporter": ("alerting", "llmcost"), "alerting": ("llmcost",)}


def _is_module(name: str) -> bool:
    """True when `name` (dotted) is a module or package of this repository."""
    path = REPO.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _names_under(name: str, roots: tuple[str, ...]) -> bool:
    return name.split(".", 1)[0] in roots


def imported_names(tree: ast.AST) -> Iterator[tuple[int, str]]:
    """(line, module) of every import, dynamic import and module-naming string in `tree`."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            value = node.value.strip()
            # A dotted name of a real module: a string registry of modules to import later.
            if "." in value and " " not in value and _is_module(value):
                yield node.lineno, value
        if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if called in ("import_module", "__import__") and isinstance(node.args[0].value, str):
                yield node.lineno, node.args[0].value


def violations(package: str) -> list[str]:
    """`path:line imports module` for every import of `package` that points the wrong way."""
    roots = FORBIDDEN[package]
    found = []
    for path in sorted((REPO / package).rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for line, name in imported_names(tree):
            if _names_under(name, roots):
                found.append(f"{path.relative_to(REPO)}:{line} imports {name}")
    return sorted(set(found))


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_imports_point_one_way(package: str) -> None:
    assert violations(package) == [], f"{package} must import nothing of {', '.join(FORBIDDEN[package])}"


def test_the_check_sees_hidden_imports() -> None:
    source = """
import importlib

def later():
    from alerting.budgets.spend import BudgetSpendHook
    import llmcost.wiring

SECTION_MODULES = {"budgets": "alerting.budgets.definition"}
importlib.import_module("llmcost")
__import__("alerting")
OTLP_ATTRIBUTE = "llmcost.project"  # an attribute name, not a module
"""
    names = {name for _line, name in imported_names(ast.parse(source))}
    assert {"alerting.budgets.spend", "llmcost.wiring", "alerting.budgets.definition", "llmcost", "alerting"} <= names
    assert "llmcost.project" not in names
