"""docs/api.md names every public name of safelog, with the signature it has.

A public name is one in ``safelog.__all__``, and ``__version__``.  Each is
documented under a heading ``### `safelog.NAME(PARAMETERS)` `` (callables) or
``### `safelog.NAME` `` (constants); the parameters listed, with their
defaults and their ``*`` marker, must read as ``inspect.signature`` gives
them, so a renamed parameter or changed default fails here.
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

import safelog

API_PAGE = Path(__file__).resolve().parent.parent / "docs" / "api.md"
_HEADING = re.compile(r"^### `safelog\.(?P<name>\w+)(?:\((?P<params>.*)\))?`$")


def documented() -> dict[str, str | None]:
    """Each name with a heading on the page -> its parameter list (None for a
    constant)."""
    found: dict[str, str | None] = {}
    for line in API_PAGE.read_text(encoding="utf-8").splitlines():
        match = _HEADING.match(line)
        if match:
            found[match.group("name")] = match.group("params")
    return found


def public_names() -> list[str]:
    return [*safelog.__all__, "__version__"]


def written_as_in_docs(obj: object) -> str:
    """``obj``'s parameters as the page writes them: ``name=default`` with
    the default's repr in double quotes, ``*`` before keyword-only ones."""
    parts = []
    marked = False
    for parameter in inspect.signature(obj).parameters.values():  # type: ignore[arg-type]
        if parameter.kind is parameter.KEYWORD_ONLY and not marked:
            parts.append("*")
            marked = True
        text = parameter.name
        if parameter.default is not parameter.empty:
            default = repr(parameter.default)
            if isinstance(parameter.default, str):
                default = '"' + parameter.default + '"'
            elif isinstance(parameter.default, tuple):
                default = default.replace("'", '"')
            text += "=" + default
        parts.append(text)
    return ", ".join(parts)


def test_every_public_name_is_documented() -> None:
    assert [] == [name for name in public_names() if name not in documented()]


def test_every_documented_name_is_public() -> None:
    assert [] == [name for name in documented() if name not in public_names()]


@pytest.mark.parametrize("name", public_names())
def test_documented_signature_matches_the_code(name: str) -> None:
    obj = getattr(safelog, name)
    params = documented().get(name)
    if callable(obj):
        assert written_as_in_docs(obj) == params
    else:
        assert params is None, f"{name} is a constant, documented as callable"
