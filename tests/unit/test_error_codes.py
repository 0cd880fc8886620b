"""Every ``error_code`` a task can end with is documented in docs/api.md.

Codes are the constants of ``dragon.errors`` plus any literal a module passes as a code
(``TaskError("...")``, ``"error_code": "..."``), found by reading the source, so a code
added anywhere without its line in the docs fails here.
"""

from __future__ import annotations

import ast
from pathlib import Path

from dragon import errors

ROOT = Path(__file__).resolve().parents[2]


def constant_codes() -> set[str]:
    return {
        value for name, value in vars(errors).items() if name.isupper() and isinstance(value, str)
    }


def literal_codes() -> set[str]:
    found = set()
    for path in (ROOT / "dragon").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Call) and node.args:
                func = node.func
                name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
                first = node.args[0]
                if name == "TaskError" and isinstance(first, ast.Constant):
                    found.add(first.value)
            if isinstance(node, ast.Dict):
                for key, value in zip(node.keys, node.values, strict=True):
                    if (
                        isinstance(key, ast.Constant)
                        and key.value == "error_code"
                        and isinstance(value, ast.Constant)
                        and value.value
                    ):
                        found.add(value.value)
    return found


def test_the_scan_finds_codes_of_both_kinds():
    assert {"process_failed", "internal_error", "parameters"} <= constant_codes()
    assert "unknown_task" in literal_codes()


def test_every_error_code_is_in_the_api_docs():
    text = (ROOT / "docs" / "api.md").read_text()
    missing = sorted(c for c in constant_codes() | literal_codes() if f"`{c}`" not in text)
    assert not missing, f"add to the error_code list of docs/api.md: {missing}"
