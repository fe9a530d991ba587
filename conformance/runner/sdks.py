"""How to start each SDK's conformance client (argv, run from the repo root)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Final

ROOT: Final = Path(__file__).resolve().parents[2]

#: SDK name -> the command that starts its conformance client. Go, Java and
#: Ruby join here when their clients exist (e.g. ["go", "run", "./sdk-go/conformance"]).
CLIENTS: Final[dict[str, list[str]]] = {
    "python": [sys.executable, str(ROOT / "sdk-python" / "conformance" / "client.py")],
}
