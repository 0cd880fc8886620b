"""docs/writing-tasks.md followed as written: its ``image.grey`` example, saved as a module
outside dragon, runs in a real ``dragon serve``, loaded by DRAGON_TASK_MODULES and, packaged
with the guide's entry point, as an installed plugin."""

from __future__ import annotations

import io
import re
import tomllib
from pathlib import Path

from PIL import Image

from tests.support.media import image_bytes
from tests.support.server import ROOT, Server, task_result

GUIDE = (ROOT / "docs" / "writing-tasks.md").read_text()


def guide_block(language: str, marker: str) -> str:
    """The guide's one code block in ``language`` that contains ``marker``."""
    [block] = [b for b in re.findall(rf"```{language}\n(.*?)```", GUIDE, re.S) if marker in b]
    return block


def image_grey_folder(tmp_path: Path) -> Path:
    """``image_grey.py`` "somewhere on PYTHONPATH", as the guide says."""
    folder = tmp_path / "my-tasks"
    folder.mkdir()
    (folder / "image_grey.py").write_text(guide_block("python", 'TASK_NAME = "image.grey"'))
    return folder


def runs_image_grey(server: Server, origin) -> None:
    url = origin.add("guide/cat.png", image_bytes(64, 48, (200, 30, 90), fmt="PNG"), "image/png")
    result = task_result(server, {"task_name": "image.grey", "url": url, "levels": 2})
    assert (result["width"], result["height"]) == (64, 48)
    with Image.open(io.BytesIO(server.get(result["output"]).body)) as out:
        assert out.mode == "L" and {v for _, v in out.getcolors()} <= {0, 255}
    [refused] = server.create([{"task_name": "image.grey", "url": url, "levels": 1}])
    assert refused["status"] == "error" and refused["error_code"] == "parameters"
    assert "levels" in refused["error"]["parameters"]
    names = server.request("GET", "/openapi.json", auth=False).json()["components"]["schemas"]
    assert "task.image.grey" in names


def test_the_guide_example_runs_as_a_plugin_named_in_the_settings(make_server, origin, tmp_path):
    folder = image_grey_folder(tmp_path)
    server = make_server(env={"PYTHONPATH": str(folder), "DRAGON_TASK_MODULES": "image_grey"})
    runs_image_grey(server, origin)


def test_the_guide_example_runs_as_an_installed_plugin(make_server, origin, tmp_path):
    """The guide's ``pyproject.toml`` entry point, as ``pip install`` leaves it on disk: a
    ``*.dist-info`` folder beside the module. No setting names the module."""
    folder = image_grey_folder(tmp_path)
    pyproject = tomllib.loads(guide_block("toml", "dragon.tasks"))
    entries = pyproject["project"]["entry-points"]["dragon.tasks"]
    info = folder / "image_grey-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: image-grey\nVersion: 1.0\n")
    lines = [f"{name} = {target}" for name, target in entries.items()]
    (info / "entry_points.txt").write_text("[dragon.tasks]\n" + "\n".join(lines) + "\n")
    server = make_server(env={"PYTHONPATH": str(folder), "DRAGON_TASK_MODULES": ""})
    runs_image_grey(server, origin)
