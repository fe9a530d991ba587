"""Errors the generator reports to its user."""

from __future__ import annotations


class CodegenError(Exception):
    """A problem with the input or the environment, reported without a traceback."""


class ValidationError(CodegenError):
    """The API definition breaks one or more generator rules.

    ``problems`` holds one line per problem, each naming the element.
    """

    def __init__(self, problems: list[str]) -> None:
        self.problems = tuple(problems)
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"the API definition has {len(problems)} problem(s):\n{lines}")
