"""The server's one dependency that setup.cfg cannot declare: the client distribution
(``dragon-client``, ``clients/python``) from this same checkout.

A checkout depends on its own ``clients/python`` by its absolute path (a PEP 508 direct
reference), so ``pip install -e .`` and ``make install`` need nothing that is not in the
clone; built elsewhere (from an sdist without it), the server depends on the released
``dragon-client`` of its own version.
"""

from __future__ import annotations

import configparser
from pathlib import Path

from setuptools import setup

HERE = Path(__file__).resolve().parent
CLIENT = HERE / "clients" / "python"


def client_requirement() -> str:
    if (CLIENT / "pyproject.toml").is_file():
        return f"dragon-client @ {CLIENT.as_uri()}"
    cfg = configparser.ConfigParser()
    cfg.read(HERE / "setup.cfg")
    return f"dragon-client=={cfg['metadata']['version']}"


def requirements() -> list[str]:
    cfg = configparser.ConfigParser()
    cfg.read(HERE / "setup.cfg")
    listed = cfg["options"]["install_requires"].strip().splitlines()
    return [*(line.strip() for line in listed if line.strip()), client_requirement()]


setup(install_requires=requirements())
