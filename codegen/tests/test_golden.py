"""The kitchen sink's generated output matches the committed golden files.

After an intended generator change: ``SECINFRA_UPDATE_GOLDEN=1 pytest codegen/tests``
rewrites codegen/tests/golden/; review the diff like any other change.
"""

from __future__ import annotations

import os
from pathlib import PurePosixPath

from codegen_testlib import GOLDEN

from secinfra_codegen.pipeline import compare, write
from secinfra_codegen.targets import HEADER, Output


def test_kitchen_sink_matches_golden(kitchen_outputs: list[Output]) -> None:
    if os.environ.get("SECINFRA_UPDATE_GOLDEN") == "1":
        write(kitchen_outputs, GOLDEN)
    drifts = compare(kitchen_outputs, GOLDEN)
    assert not drifts, "golden drift (SECINFRA_UPDATE_GOLDEN=1 to accept):\n" + "\n".join(
        d.diff or f"{d.path}: {d.kind}" for d in drifts
    )


#: The first line of a generated file, by suffix: each language's comment syntax.
FIRST_LINES = {
    ".py": f"# {HEADER}\n",
    ".rb": f"# {HEADER}\n",
    ".go": f"// {HEADER}\n",
    ".java": f"// {HEADER}\n",
    ".md": f"<!-- {HEADER} -->\n",
    ".json": f'{{\n  "x-generated": "{HEADER}"',
}


def test_every_generated_file_starts_with_the_header(kitchen_outputs: list[Output]) -> None:
    for out in kitchen_outputs:
        for name, text in out.files.items():
            suffix = PurePosixPath(name).suffix
            assert suffix in FIRST_LINES, f"{out.directory}/{name}: no header rule for {suffix}"
            assert text.startswith(FIRST_LINES[suffix]), f"{out.directory}/{name}: no header"
