"""docs/mtls/python.md's examples, run as the one program they form."""

from __future__ import annotations

import re
from pathlib import Path

GUIDE = Path(__file__).resolve().parents[3] / "docs" / "mtls" / "python.md"


def test_the_python_mtls_guide_runs() -> None:
    blocks = re.findall(r"^```python\n(.*?)^```", GUIDE.read_text(), flags=re.S | re.M)
    assert len(blocks) >= 6
    program = "\n".join(blocks)
    exec(compile(program, str(GUIDE), "exec"), {"__name__": "mtls_guide"})
