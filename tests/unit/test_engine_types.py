"""The engine's boundaries are typed: no parameter, attribute or return in ``dragon/engine``
is a bare ``Any`` (mypy --strict accepts one, so this test holds the line). JSON documents
as ``dict[str, Any]`` are fine: ``Any`` inside a container is what JSON is."""

from __future__ import annotations

import ast
from pathlib import Path

import dragon.engine

ENGINE = Path(dragon.engine.__file__).parent


def bare_any(annotation: ast.expr | None) -> bool:
    """``Any``, or ``Any`` as one side of a ``|`` union (``Any | None``)."""
    if annotation is None:
        return False
    if isinstance(annotation, ast.Constant) and isinstance(annotation.value, str):
        annotation = ast.parse(annotation.value, mode="eval").body
    if isinstance(annotation, ast.Name | ast.Attribute):
        return (annotation.id if isinstance(annotation, ast.Name) else annotation.attr) == "Any"
    if isinstance(annotation, ast.BinOp) and isinstance(annotation.op, ast.BitOr):
        return bare_any(annotation.left) or bare_any(annotation.right)
    return False


def bare_anys(tree: ast.AST) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            arguments = node.args.posonlyargs + node.args.args + node.args.kwonlyargs
            found += [f"{node.name}({a.arg})" for a in arguments if bare_any(a.annotation)]
            if bare_any(node.returns):
                found.append(f"{node.name} -> Any")
        elif isinstance(node, ast.AnnAssign) and bare_any(node.annotation):
            found.append(f"{ast.unparse(node.target)}: Any")
    return found


def test_no_bare_any_in_the_engine():
    found = {
        path.name: hits
        for path in sorted(ENGINE.glob("*.py"))
        if (hits := bare_anys(ast.parse(path.read_text(encoding="utf-8"))))
    }
    assert found == {}


def test_the_check_sees_a_bare_any():
    tree = ast.parse("def f(a: Any, b: dict[str, Any], c: 'Any | None') -> Any: ...\nx: Any = 1\n")
    assert bare_anys(tree) == ["f(a)", "f(c)", "f -> Any", "x: Any"]
