"""Every ```python block in README.md and docs/*.md runs, so docs cannot rot.

Blocks are found when the tests are collected, so a page added later is
covered without a change here.  Each block is written to ``example.py`` in a
temporary directory of its own and run as a script (so ``multiprocessing``
with the spawn start method can import it) in a child interpreter with a
hard timeout.  A snippet that is not meant to run uses another fence
language: ```sh, ```ini, ```text.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import NamedTuple

import pytest

from scenario import run_ok

ROOT = Path(__file__).resolve().parent.parent
#: Generous for a block that forks or starts a few processes on a busy machine.
BLOCK_TIMEOUT = 30.0

_FENCE = re.compile(r"^(?P<indent> *)(?P<fence>`{3,}|~{3,})(?P<info>[^`\n]*)$")


class Block(NamedTuple):
    """One fenced code block: where it starts, its language and its text."""

    path: Path
    line: int  # of the opening fence, 1-based
    language: str
    code: str

    @property
    def name(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def doc_files() -> list[Path]:
    """README.md and every Markdown page under docs/."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("**/*.md"))]


def fenced_blocks(path: Path) -> list[Block]:
    """Every fenced block of ``path``, in order (CommonMark fences)."""
    blocks = []
    lines = path.read_text(encoding="utf-8").splitlines()
    index = 0
    while index < len(lines):
        opening = _FENCE.match(lines[index])
        if opening is None:
            index += 1
            continue
        fence, indent = opening.group("fence"), len(opening.group("indent"))
        language = opening.group("info").strip().split(" ")[0].lower()
        body: list[str] = []
        end = index + 1
        while end < len(lines):
            closing = _FENCE.match(lines[end])
            if (
                closing is not None
                and closing.group("fence")[0] == fence[0]
                and len(closing.group("fence")) >= len(fence)
                and not closing.group("info").strip()
            ):
                break
            body.append(
                lines[end][indent:] if lines[end][:indent].isspace() else lines[end]
            )
            end += 1
        blocks.append(Block(path, index + 1, language, "\n".join(body) + "\n"))
        index = end + 1
    return blocks


def _all_blocks() -> list[Block]:
    return [
        block for path in doc_files() if path.exists() for block in fenced_blocks(path)
    ]


PYTHON_BLOCKS = [block for block in _all_blocks() if block.language == "python"]


@pytest.mark.parametrize("block", PYTHON_BLOCKS, ids=[b.name for b in PYTHON_BLOCKS])
def test_python_block_runs(block: Block, tmp_path: Path) -> None:
    """The block runs as a script in an empty directory and exits 0 in time."""
    (tmp_path / "example.py").write_text(block.code, encoding="utf-8")
    run_ok(
        "import runpy; runpy.run_path('example.py', run_name='__main__')",
        cwd=tmp_path,
        timeout=BLOCK_TIMEOUT,
    )


def test_no_python_block_escapes_the_tests() -> None:
    """No block is fenced as py, python3 or pycon, which these tests would
    skip; runnable code says python, anything else says what it is."""
    escaping = [
        block.name
        for block in _all_blocks()
        if block.language in ("py", "python3", "py3", "pycon", "")
        and block.language != "python"
        and _looks_like_python(block)
    ]
    assert [] == escaping


def _looks_like_python(block: Block) -> bool:
    if block.language in ("py", "python3", "py3", "pycon"):
        return True
    return bool(re.search(r"^(import|from) \w+", block.code, re.MULTILINE))


def test_the_extractor_finds_blocks_as_markdown_does(tmp_path: Path) -> None:
    """Fences of four backticks, tildes and indented fences are found, and a
    shorter fence inside a longer one does not end it."""
    page = tmp_path / "page.md"
    page.write_text(
        "Text\n\n````python\nprint(1)\n```\n````\n\n  ~~~python\n  x = 2\n  ~~~\n"
        "\n```sh\nls\n```\n"
    )
    found = [(b.line, b.language, b.code) for b in fenced_blocks(page)]
    assert [
        (3, "python", "print(1)\n```\n"),
        (8, "python", "x = 2\n"),
        (12, "sh", "ls\n"),
    ] == found
