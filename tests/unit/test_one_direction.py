"""One direction between the core and the chaos extension: the extension imports the core,
the core never imports the extension — not with an import statement, not through importlib.

The game day meets the extension only through the ``chaos`` CLI and the files an experiment
leaves behind, so the core installs and runs on a machine without the extension.
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.unit.test_layout import CORE, EXTENSION, REPO, imported_modules

_IMPORTERS = {"import_module", "__import__", "find_spec"}


def names_the_extension(name: str) -> bool:
    return name == "chaoscautious" or name.startswith("chaoscautious.")


def imported_by_name(path: Path) -> set[str]:
    """Module names given as a string to importlib.import_module, __import__ or find_spec."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call) and node.args:
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            first = node.args[0]
            if called in _IMPORTERS and isinstance(first, ast.Constant):
                found.add(str(first.value))
            if called in _IMPORTERS and isinstance(first, ast.JoinedStr):
                found.update(
                    str(part.value) for part in first.values if isinstance(part, ast.Constant)
                )
    return found


def test_the_core_never_imports_the_extension() -> None:
    offenders = [
        str(path.relative_to(REPO))
        for path in sorted(CORE.rglob("*.py"))
        if any(names_the_extension(name) for name in imported_modules(path))
        or any(names_the_extension(name) for name in imported_by_name(path))
    ]
    assert offenders == []


def test_the_extension_does_import_the_core() -> None:
    imported = set().union(*(imported_modules(path) for path in EXTENSION.rglob("*.py")))
    assert any(name.startswith("cautious.") for name in imported)


def test_the_scan_would_catch_a_dynamic_import(tmp_path: Path) -> None:
    sneaky = tmp_path / "sneaky.py"
    sneaky.write_text(
        'import importlib\nimportlib.import_module(f"chaoscautious.{name}")\n', encoding="utf-8"
    )
    assert any(names_the_extension(name) for name in imported_by_name(sneaky))
