"""The README's Python snippets run, against a real server, so they cannot rot."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import secinfra
from secinfra.testing import ReferenceServer

README = Path(__file__).resolve().parents[3] / "README.md"
DEMO_ID = "spiffe://secinfra.local/workload/demo"


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)


def test_the_readme_flow_reads_a_secret(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocks = _python_blocks()
    assert len(blocks) == 2, "the README shows the admin step and the service"
    with ReferenceServer(data_dir=tmp_path / "data") as server:
        admin_dir = server.data_dir / "admin"
        replacements = {
            "https://127.0.0.1:8443": server.url,
            ".dev/data/admin/": f"{admin_dir}/",
            "sjt_...": server.join_token(DEMO_ID),
        }
        for block in blocks:
            code = block
            for old, new in replacements.items():
                code = code.replace(old, new)
            namespace: dict[str, object] = {}
            exec(compile(code, str(README), "exec"), namespace)  # our own README
            for name in ("admin", "client"):
                client = namespace.get(name)
                if isinstance(client, secinfra.Client):
                    client.close()
    out = capsys.readouterr().out
    assert out.strip() == "b's3cret'"
