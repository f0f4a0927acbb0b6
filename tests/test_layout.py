"""The package's layout: its private modules never import the package back.

``safelog/__init__.py`` imports the private modules; a private module that
imports ``safelog`` itself depends on the order of those imports, and reads
names through the package that it could import from the module that owns
them.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import safelog

PACKAGE = Path(safelog.__file__).resolve().parent


def _imports_of_package(source: str) -> list[str]:
    """The ``import safelog...`` and ``from safelog... import`` statements in
    ``source``, as ``line: statement``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            modules = [node.module or ""]
        else:
            continue
        if any(name == "safelog" or name.startswith("safelog.") for name in modules):
            found.append(f"{node.lineno}: {ast.unparse(node)}")
    return found


@pytest.mark.parametrize(
    "module", sorted(path.name for path in PACKAGE.glob("_*.py")), ids=str
)
def test_private_module_does_not_import_the_package(module: str) -> None:
    """A private module imports what it needs from its sibling modules
    (``from ._handlers import ...``), never ``safelog`` itself."""
    source = (PACKAGE / module).read_text(encoding="utf-8")
    assert [] == _imports_of_package(source)


def test_finds_an_import_of_the_package() -> None:
    """The check above sees both spellings, and not a relative import."""
    source = (
        "import safelog\nfrom safelog._queue import QueueHandler\nfrom . import _x\n"
    )
    assert ["1: import safelog", "2: from safelog._queue import QueueHandler"] == (
        _imports_of_package(source)
    )
