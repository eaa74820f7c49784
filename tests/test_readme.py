"""The README's snippets run as written: every Python block executes on a fresh folder, and every
`linkgan ...` line of its shell blocks is a valid command line."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from linkgan.cli import build_parser

README = Path(__file__).resolve().parents[1] / "README.md"


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README.read_text(), flags=re.S)


def shell_commands() -> list[str]:
    """The `linkgan ...` commands of the bash blocks, continuation lines joined, comments dropped."""
    commands = []
    for block in blocks("bash"):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split(" #")[0].strip()
            if "-m linkgan " in line:  # torchrun ... -m linkgan train ...
                line = "linkgan " + line.split("-m linkgan ", 1)[1]
            if line.startswith("linkgan "):
                commands.append(line)
    return commands


def test_the_readme_has_snippets():
    assert len(blocks("python")) >= 2 and len(shell_commands()) >= 30


@pytest.mark.parametrize("command", shell_commands())
def test_each_shell_command_parses(command):
    args = build_parser().parse_args(shlex.split(command)[1:])
    assert callable(args.func)


@pytest.mark.parametrize("index", range(len(blocks("python"))))
def test_each_python_snippet_runs(tmp_path, index):
    code = blocks("python")[index]
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"README python block {index} failed:\n{code}\n{done.stderr[-3000:]}"
