"""Sphinx extension: the quickstart's language tabs, one per SDK example present.

The quickstart programs live with their SDKs, not in ``docs/``::

    sdk-<lang>/examples/quickstart/        the program (and its build file, if any)
    sdk-<lang>/examples/run-quickstart.sh  builds what it needs and runs it

The directive below emits a sphinx-design tab set with one tab per language in
:data:`LANGUAGES` whose ``run-quickstart.sh`` exists, each showing the
program's source files (``literalinclude``) and the command that runs it. A
language whose example is not in the checkout gets no tab, so the page never
shows a program that does not exist; the page lists the missing ones. The
same files are what ``docs/tests/test_quickstart.py`` runs, so a tab cannot
show code that was not executed by the test suite::

    ```{quickstart-tabs}
    ```
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Final

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective


@dataclass(frozen=True)
class Language:
    """One SDK's quickstart example."""

    name: str
    """Tab label."""
    folder: str
    """The SDK's folder at the repository root."""
    suffixes: tuple[str, ...]
    """Which files of ``examples/quickstart/`` are shown (the program's source)."""
    pygments: str
    program: str = "examples/quickstart"
    """The program's folder, under ``folder``."""
    script: str = "examples/run-quickstart.sh"
    """The script that builds and runs it, under ``folder``."""
    sync: str = ""
    """The tab's sync key; default ``pygments``."""


LANGUAGES: Final = (
    Language("Python", "sdk-python", (".py",), "python"),
    # The same SDK's asyncio client (secinfra.aio), a program of its own.
    Language(
        "Python (asyncio)",
        "sdk-python",
        (".py",),
        "python",
        sync="python-aio",
        program="examples/quickstart-aio",
        script="examples/run-quickstart-aio.sh",
    ),
    Language("Go", "sdk-go", (".go",), "go"),
    Language("Java", "sdk-java", (".java",), "java"),
    Language("Ruby", "sdk-ruby", (".rb",), "ruby"),
)
RUN_SCRIPT: Final = "examples/run-quickstart.sh"
PROGRAM_DIR: Final = "examples/quickstart"


def present(root: Path) -> list[tuple[Language, list[Path]]]:
    """The languages whose quickstart exists under ``root``, with their source files.

    A language counts only if it has both the run script and at least one
    source file, so a half-written example does not produce an empty tab.
    """
    found: list[tuple[Language, list[Path]]] = []
    for language in LANGUAGES:
        sdk = root / language.folder
        if not (sdk / language.script).is_file():
            continue
        sources = sorted(
            path
            for path in (sdk / language.program).rglob("*")
            if path.is_file() and path.suffix in language.suffixes
        )
        if sources:
            found.append((language, sources))
    return found


class QuickstartTabs(SphinxDirective):
    """``quickstart-tabs``: one tab per SDK whose quickstart example exists."""

    has_content: ClassVar[bool] = False

    def run(self) -> list[nodes.Node]:
        srcdir = Path(self.env.srcdir)
        root = srcdir.parent
        found = present(root)
        if not found:
            raise self.error("quickstart-tabs: no sdk-*/examples/run-quickstart.sh found")
        lines: list[str] = ["::::{tab-set}", ":sync-group: lang", ""]
        for language, sources in found:
            lines += [
                f":::{{tab-item}} {language.name}",
                f":sync: {language.sync or language.pygments}",
                "",
            ]
            for source in sources:
                self.env.note_dependency(str(source))
                shown = source.relative_to(root).as_posix()
                lines += [
                    f"```{{literalinclude}} /../{shown}",
                    f":language: {language.pygments}",
                    f":caption: {shown}",
                    "```",
                    "",
                ]
            script = f"{language.folder}/{language.script}"
            self.env.note_dependency(str(root / script))
            lines += [
                "Run it from the repository root (it builds what it needs first):",
                "",
                "```sh",
                f"bash {script}",
                "```",
                "",
                ":::",
                "",
            ]
        lines += ["::::", ""]
        missing = [lang.name for lang in LANGUAGES if lang not in {f[0] for f in found}]
        if missing:
            lines += [
                "```{note}",
                f"No quickstart example for {_and(missing)} in this version of the"
                " repository yet; their tabs appear when"
                " `sdk-<lang>/examples/run-quickstart.sh` exists.",
                "```",
                "",
            ]
        container = nodes.container()
        self.state.nested_parse(StringList(lines, source=self.get_source_info()[0]), 0, container)
        return container.children


def _and(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_directive("quickstart-tabs", QuickstartTabs)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
