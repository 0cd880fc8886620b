"""Run the examples of a Markdown page and check their output against the page.

A ```console block holds commands (lines starting with ``$ ``), each followed by what it
prints (stdout and stderr, as a terminal shows them). A ```python block followed at once by
a ```text block is a program and what it prints. Both run in one folder, in page order.

What differs from run to run is matched, not compared:

- a line ``...`` stands for any number of lines, and ``...`` inside a line for any text;
- a task key (26 characters of base32), or the end of one shown as ``…XXXXXX``, stands for
  the key of this run: the first time the page shows it, it takes the value printed, and
  from then on it must be that value again, in outputs and in the commands and programs
  that use it; two keys of the page never stand for the same key of a run. An upload's id
  (32 hexadecimal digits) is bound the same way;
- times (ISO 8601) and the random end of stored file names (``dragon-image.thumb-F88bhY``)
  match any.

Text the page shows for the machine it ran on (its server's URL) is replaced by this run's
before commands run and outputs are compared (``replace``).
"""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import sys
from pathlib import Path

FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.M | re.S)
KEY = r"[A-Z2-7]{26}"
KEY_END = r"…[A-Z2-7]{6}"
UPLOAD_ID = r"[0-9a-f]{32}"
TIME = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d)"
STORED_NAME = r"(dragon-[a-z][\w.]*-)[A-Za-z0-9]{6}\b"
VARYING = re.compile(
    rf"(?P<key>\b{KEY}\b|{KEY_END}\b|\b{UPLOAD_ID}\b)|(?P<time>{TIME})|{STORED_NAME}|\.\.\."
)


@dataclasses.dataclass
class Example:
    kind: str  # "console" or "python"
    code: str  # one command, or a program
    expected: str
    line: int  # where the page shows it, for failures

    def __str__(self) -> str:
        return f"line {self.line}: {self.code.splitlines()[0][:80]}"


def examples(page: str) -> list[Example]:
    """The page's examples, in order."""
    found: list[Example] = []
    blocks = list(FENCE.finditer(page))
    for i, block in enumerate(blocks):
        kind, body = block.group(1), block.group(2)
        line = page.count("\n", 0, block.start()) + 1
        if kind == "console":
            found += _commands(body, line)
        elif kind == "python" and i + 1 < len(blocks):
            after = blocks[i + 1]
            if after.group(1) == "text" and not page[block.end() : after.start()].strip():
                found.append(Example("python", body, after.group(2), line))
    return found


def _commands(body: str, line: int) -> list[Example]:
    found: list[Example] = []
    for offset, text in enumerate(body.splitlines()):
        if text.startswith("$ "):
            found.append(Example("console", text[2:], "", line + 1 + offset))
        elif found:
            found[-1].expected += text + "\n"
    return found


class Page:
    """The bindings of one page's run: which key of the run each key of the page is."""

    def __init__(self, replace: dict[str, str]) -> None:
        self.replace = replace
        self.keys: dict[str, str] = {}
        self.status = 0  # of the last command, for a page's `echo $?`

    def code(self, text: str) -> str:
        """A command or program of the page, with this run's URLs and keys."""
        for shown, actual in self.replace.items():
            text = text.replace(shown, actual)
        for shown, actual in sorted(self.keys.items(), key=lambda kv: -len(kv[0])):
            text = text.replace(shown, actual)
        return text

    def check(self, example: Example, output: str) -> None:
        """Fail, showing both, unless ``output`` is what the page shows."""
        expected = example.expected
        for shown, actual in self.replace.items():
            expected = expected.replace(shown, actual)
        pattern, groups = self._pattern(expected)
        got = "".join(line.rstrip() + "\n" for line in output.strip("\n").splitlines())
        match = re.fullmatch(pattern, got)
        assert match, f"{example}\n--- the page shows:\n{expected}--- this run printed:\n{got}"
        for group, shown in groups.items():
            actual = match.group(group)
            taken = {v: k for k, v in self.keys.items()}
            assert taken.get(actual, shown) == shown, (
                f"{example}: {shown} of the page is {actual}, which the page calls "
                f"{taken.get(actual)}"
            )
            self.keys[shown] = actual

    def _pattern(self, expected: str) -> tuple[str, dict[str, str]]:
        """The regular expression of an expected output, and its key groups (group name:
        the key the page shows)."""
        groups: dict[str, str] = {}
        pattern = ""
        for line in expected.strip("\n").splitlines():
            line = line.rstrip()
            # Every line of the output ends with a newline; "..." is any lines, or none.
            pattern += r"(?:[^\n]*\n)*?" if line == "..." else self._line(line, groups) + "\n"
        return pattern, groups

    def _line(self, line: str, groups: dict[str, str]) -> str:
        out, last = "", 0
        for m in VARYING.finditer(line):
            out += re.escape(line[last : m.start()])
            last = m.end()
            if m.group("key"):
                out += self._key(m.group("key"), groups)
            elif m.group("time"):
                out += TIME
            elif m.group(3):
                out += re.escape(m.group(3)) + r"[A-Za-z0-9]{6}"
            else:
                out += r"[^\n]*?"
        return out + re.escape(line[last:])

    def _key(self, shown: str, groups: dict[str, str]) -> str:
        if shown in self.keys:
            return re.escape(self.keys[shown])
        for group, other in groups.items():
            if other == shown:
                return f"(?P={group})"
        group = f"k{len(groups)}"
        groups[group] = shown
        shape = KEY_END if shown.startswith("…") else KEY if len(shown) == 26 else UPLOAD_ID
        return f"(?P<{group}>{shape})"


def run(
    example: Example, page: Page, folder: Path, env: dict[str, str], bin_dir: Path | None = None
) -> str:
    """Run one example in ``folder``; what it printed (stdout and stderr, interleaved).

    Each command runs in a shell of its own that starts with ``$?`` set to the exit status
    of the command before, as in the one shell a reader types them in. ``bin_dir``: where
    ``dragon`` and ``python3`` come from (a venv's ``bin``; this install's by default).
    """
    code = page.code(example.code)
    bin_dir = bin_dir or Path(sys.executable).parent
    if example.kind == "console":
        argv = ["bash", "-c", f"(exit {page.status}); {code}"]
    else:
        script = folder / f"example_{example.line}.py"
        script.write_text(code, encoding="utf-8")
        argv = [str(bin_dir / "python"), str(script)]
    done = subprocess.run(
        argv,
        cwd=folder,
        env={
            **env,
            "PATH": str(bin_dir) + os.pathsep + env.get("PATH", ""),
            "PYTHONIOENCODING": "utf-8",
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        encoding="utf-8",
        timeout=300,
    )
    page.status = done.returncode
    return done.stdout
