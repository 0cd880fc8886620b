"""The client distribution (``clients/python``, ``dragon-client``) in a clean venv: it installs
with httpx alone (none of the server's dependencies), and its ``Client`` and ``dragon``
commands work against a live server."""

from __future__ import annotations

import json
import subprocess
import textwrap
from pathlib import Path

import pytest

from tests.support.client_venv import clean_env

SERVER_ONLY = ("aiohttp", "numpy", "scipy", "asyncpg", "aiobotocore", "PIL", "marshmallow")


def run_in(venv: Path, *argv: str, server=None, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(venv / "bin" / argv[0]), *argv[1:]],
        capture_output=True,
        text=True,
        env=clean_env(
            None if server is None else {"DRAGON_URL": server.url, "DRAGON_SECRET": server.secret}
        ),
        cwd=cwd,
        timeout=120,
    )


@pytest.mark.timeout(600)
def test_the_client_installs_alone_with_httpx_only(client_venv, tmp_path):
    listed = run_in(client_venv, "python", "-m", "pip", "list", "--format=json", cwd=tmp_path)
    names = {p["name"].lower() for p in json.loads(listed.stdout)}
    assert {"dragon-client", "httpx"} <= names
    assert not names & {"dragon", "aiohttp", "numpy", "rich", "asyncpg", "pillow"}, names
    probe = textwrap.dedent(
        f"""
        import importlib.util, dragon.client
        print(dragon.client.__file__)
        print([m for m in {SERVER_ONLY!r} if importlib.util.find_spec(m)])
        print(importlib.util.find_spec("dragon.cli") is None)
        """
    )
    done = run_in(client_venv, "python", "-c", probe, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    where, found, no_server = done.stdout.splitlines()
    assert where.startswith(str(client_venv)) and found == "[]" and no_server == "True"


@pytest.mark.timeout(600)
def test_client_and_commands_from_the_distribution_against_a_live_server(
    client_venv, make_server, tmp_path
):
    server = make_server()
    program = textwrap.dedent(
        """
        import json
        from dragon.client import AsyncClient, Client, DragonError

        with Client() as client:  # DRAGON_URL and DRAGON_SECRET, as a user sets them
            done = client.run({"task_name": "hello", "name": "light"})
            listed = [d["key"] for d in client.tasks(limit=1)]
            try:
                client.status([])
                refused = None
            except DragonError as exc:
                refused = exc.status
        print(json.dumps({"done": done, "listed": listed, "refused": refused}))
        """
    )
    ran = run_in(client_venv, "python", "-c", program, server=server, cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    answer = json.loads(ran.stdout)
    assert answer["done"]["status"] == "success" and answer["done"]["result"] == "Hello light"
    assert answer["listed"] == [answer["done"]["key"]] and answer["refused"] == 400

    version = run_in(client_venv, "dragon", "--version", cwd=tmp_path)
    assert version.returncode == 0 and version.stdout.strip() == "dragon-client 0.1.0"
    cli = run_in(client_venv, "dragon", "run", "hello", "name=cli", server=server, cwd=tmp_path)
    assert cli.returncode == 0, cli.stderr
    assert json.loads(cli.stdout)["result"] == "Hello cli"
    tasks = run_in(client_venv, "dragon", "tasks", "--limit", "2", server=server, cwd=tmp_path)
    assert tasks.returncode == 0, tasks.stderr
    keys = [json.loads(line)["key"] for line in tasks.stdout.splitlines()]
    assert keys[1] == answer["done"]["key"] and len(keys) == 2
    serve = run_in(client_venv, "dragon", "serve", cwd=tmp_path)  # the server's command is not here
    assert serve.returncode == 2 and "invalid choice" in serve.stderr
