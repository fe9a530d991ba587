"""The SDK floor plan (docs/sdk/floor-plan.md) matches the files of all four SDKs.

Each cell of the table names a file (relative to that SDK's source root) and
the symbols it defines; this test fails when the file is missing or a symbol is
not defined in it, so the page cannot drift from the code.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import pytest

ROOT: Final = Path(__file__).resolve().parents[2]
PAGE: Final = ROOT / "docs" / "sdk" / "floor-plan.md"

SOURCE_ROOTS: Final = {
    "Python": ROOT / "sdk-python" / "src" / "secinfra",
    "Go": ROOT / "sdk-go",
    "Java": ROOT / "sdk-java" / "src" / "main" / "java" / "dev" / "secinfra",
    "Ruby": ROOT / "sdk-ruby" / "lib" / "secinfra",
}

# How each language spells "this file defines <name>".
DEFINITIONS: Final = {
    "Python": (
        r"^\s*(?:async\s+)?(?:class|def)\s+{name}\b",
        r"^{name}\s*(?::[^=]+)?=",
    ),
    "Go": (
        r"^func\s+(?:\([^)]*\)\s*)?{name}\b",
        r"^type\s+{name}\b",
        r"^(?:var|const)\s+{name}\b",
    ),
    "Java": (
        r"\b(?:class|interface|record|enum)\s+{name}\b",
        r"^\s+(?:(?:public|protected|private|static|final|synchronized|default)\s+)*"
        r"[\w<>\[\],.? ]+\s+{name}\s*\(",
    ),
    "Ruby": (
        r"^\s*(?:class|module)\s+(?:\w+::)*{name}\b",
        r"^\s*def\s+(?:self\.)?{name}\b",
        r"^\s*{name}\s*=",
    ),
}


@dataclass(frozen=True)
class Cell:
    subject: str
    language: str
    path: str
    symbols: tuple[str, ...]


def read_table() -> list[Cell]:
    text = PAGE.read_text(encoding="utf-8")
    body = text.split("<!-- floor-plan:begin -->", 1)[1].split("<!-- floor-plan:end -->", 1)[0]
    rows = [line for line in body.strip().splitlines() if line.startswith("|")]
    header = [c.strip() for c in rows[0].strip("|").split("|")]
    cells: list[Cell] = []
    for row in rows[2:]:
        columns = [c.strip() for c in row.strip("|").split("|")]
        assert len(columns) == len(header), f"row has {len(columns)} columns: {row}"
        subject = columns[0]
        for language, value in zip(header[2:], columns[2:], strict=True):
            names = re.findall(r"`([^`]+)`", value)
            assert names, f"{subject} / {language}: the cell names no file"
            cells.append(Cell(subject, language, names[0], tuple(names[1:])))
    return cells


CELLS: Final = read_table()


def test_the_table_covers_every_language_and_subject() -> None:
    assert {c.language for c in CELLS} == set(SOURCE_ROOTS)
    subjects = {c.subject for c in CELLS}
    for needed in ("retry", "cache", "rotation", "transport", "call", "rpc: invoker"):
        assert needed in subjects


@pytest.mark.parametrize("cell", CELLS, ids=lambda c: f"{c.language}:{c.subject}")
def test_file_exists_and_defines_its_symbols(cell: Cell) -> None:
    path = SOURCE_ROOTS[cell.language] / cell.path
    assert path.is_file(), f"{cell.subject}: {path.relative_to(ROOT)} does not exist"
    assert cell.symbols, f"{cell.subject} / {cell.language}: name at least one symbol"
    text = path.read_text(encoding="utf-8")
    for name in cell.symbols:
        patterns = [p.format(name=re.escape(name)) for p in DEFINITIONS[cell.language]]
        assert any(re.search(p, text, re.MULTILINE) for p in patterns), (
            f"{cell.subject}: {path.relative_to(ROOT)} does not define {name}"
        )


def test_where_is_it_answers_name_files_of_the_floor_plan() -> None:
    text = PAGE.read_text(encoding="utf-8").split("## Where is it?", 1)[1]
    rows = [line for line in text.splitlines() if line.startswith("| ")]
    header = [c.strip() for c in rows[0].strip("|").split("|")]
    planned = {(c.language, c.path) for c in CELLS}
    answered = 0
    for row in rows[2:]:
        columns = [c.strip() for c in row.strip("|").split("|")]
        for language, value in zip(header[1:], columns[1:], strict=True):
            path = value.strip("`")
            assert (language, path) in planned, (
                f"{columns[0]} / {language}: {path} not in the table"
            )
            assert (SOURCE_ROOTS[language] / path).is_file()
            answered += 1
    assert answered == 3 * len(SOURCE_ROOTS)
