"""The rooms keep their walls: only ``cautious/backends/`` may speak to Docker.

Nothing else imports ``docker`` or the docker backend (which knows container names); the rest
reaches instances through the backend interface.

Scans the imports of every module of the core and of the chaos extension, so a new
``import docker`` elsewhere fails here, not when someone adds the ssh backend.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CORE = REPO / "pipeline" / "cautious"
EXTENSION = REPO / "chaos" / "chaoscautious"
BACKENDS = CORE / "backends"


def imported_modules(path: Path) -> set[str]:
    """Every absolute module a file imports, at the top or inside a function."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def speaks_docker(name: str) -> bool:
    return any(
        name == prefix or name.startswith(prefix + ".")
        for prefix in ("docker", "cautious.backends.docker")
    )


def modules(root: Path) -> list[Path]:
    return sorted(path for path in root.rglob("*.py") if BACKENDS not in path.parents)


@pytest.mark.parametrize("root", [CORE, EXTENSION], ids=["core", "extension"])
def test_no_module_outside_backends_imports_docker(root: Path) -> None:
    offenders = [
        str(path.relative_to(REPO))
        for path in modules(root)
        if any(speaks_docker(name) for name in imported_modules(path))
    ]
    assert modules(root) and offenders == []
