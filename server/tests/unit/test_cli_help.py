"""``secinfra-server --help``: plain text, and every flag of every command explained."""

from __future__ import annotations

import argparse
import dataclasses

import pytest

from secinfra_server.cli import _parser, main
from secinfra_server.config import SETTING_HELP, TABLE_SETTINGS, ServerConfig


def _commands(parser: argparse.ArgumentParser) -> list[tuple[str, argparse.ArgumentParser]]:
    found = [(parser.prog, parser)]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                found += _commands(sub)
    return found


def test_every_flag_of_every_command_has_help() -> None:
    missing = [
        f"{prog} {action.option_strings[0]}"
        for prog, parser in _commands(_parser())
        for action in parser._actions
        if action.option_strings and not action.help
    ]
    assert missing == []


def test_every_setting_has_one_line_of_help() -> None:
    flags = {f.name for f in dataclasses.fields(ServerConfig)} - TABLE_SETTINGS
    assert set(SETTING_HELP) == flags
    assert all("\n" not in text for text in SETTING_HELP.values())


@pytest.mark.parametrize(
    "command", [[], ["serve"], ["init"], ["kek", "rotate"], ["audit", "verify"]]
)
def test_help_is_plain_text_with_defaults(
    command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        main([*command, "--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    assert "``" not in text  # no raw reST
    if command == ["serve"]:
        assert "lifetime of workload certificates (default: 3600)" in text
        assert "(default: on)" in text  # ca_auto_rotate
        assert "--dev" in text
