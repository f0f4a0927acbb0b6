"""The package's layout: its private modules never import the package back,
the parts of ``install()`` never import the module that runs them, and no
function of theirs is longer than a screen.

``safelog/__init__.py`` imports the private modules; a private module that
imports ``safelog`` itself depends on the order of those imports, and reads
names through the package that it could import from the module that owns
them.  Likewise ``_install.py`` imports its parts (``_inplace``,
``_routing``, ``_globals``, ``_report``, ``_loggers``), each of which can be
read on its own.
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


def _imports_of_sibling(source: str, sibling: str) -> list[str]:
    """The ``from .sibling import ...`` and ``from . import sibling``
    statements in ``source``, as ``line: statement``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.ImportFrom) or node.level != 1:
            continue
        if node.module == sibling or (
            node.module is None and any(a.name == sibling for a in node.names)
        ):
            found.append(f"{node.lineno}: {ast.unparse(node)}")
    return found


@pytest.mark.parametrize(
    "module",
    sorted(
        path.name
        for path in PACKAGE.glob("_*.py")
        if not path.name.startswith("__") and path.name != "_install.py"
    ),
    ids=str,
)
def test_private_module_does_not_import_install(module: str) -> None:
    """Only ``__init__.py`` imports ``_install``: the parts of install() get
    what they need as arguments, not from the module that runs them."""
    source = (PACKAGE / module).read_text(encoding="utf-8")
    assert [] == _imports_of_sibling(source, "_install")


def test_finds_an_import_of_a_sibling() -> None:
    """The check above sees both relative spellings, and no other module."""
    source = "from ._install import x\nfrom . import _install, _y\nfrom ._z import q\n"
    assert [
        "1: from ._install import x",
        "2: from . import _install, _y",
    ] == _imports_of_sibling(source, "_install")


#: Lines from a function's ``def`` to its last line, docstring included.
LONGEST_FUNCTION = 60


def _longer_functions(source: str, limit: int) -> list[str]:
    """``name (lines)`` of each function in ``source`` longer than
    ``limit`` lines."""
    return [
        f"{node.name} ({node.end_lineno - node.lineno})"
        for node in ast.walk(ast.parse(source))
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        and node.end_lineno is not None
        and node.end_lineno - node.lineno > limit
    ]


@pytest.mark.parametrize(
    "module", sorted(path.name for path in PACKAGE.glob("*.py")), ids=str
)
def test_functions_fit_on_a_screen(module: str) -> None:
    """No function in the package is longer than LONGEST_FUNCTION lines: one
    that is does more than one thing, and hides which."""
    source = (PACKAGE / module).read_text(encoding="utf-8")
    assert [] == _longer_functions(source, LONGEST_FUNCTION)
