"""The task registry: built-in modules that declare a task, helper modules beside them,
modules named in DRAGON_TASK_MODULES, installed plugins (entry points), and what it refuses."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

import dragon.tasks
from dragon.runtime.plugins import AlreadyRegistered
from dragon.tasks import NotATask, builtin_tasks, load_tasks

TASK = '''
"""{name}: says hello from a plugin."""

from marshmallow import fields

from dragon.tasks.context import TaskContext
from dragon.tasks.schema import TaskSchema

TASK_NAME = "{name}"
HEAVY = False


class Schema(TaskSchema):
    who = fields.String(load_default="plugin")


async def run(ctx: TaskContext) -> str:
    return "hello " + ctx.params["who"]
'''


@pytest.fixture
def modules(tmp_path, monkeypatch):
    """Write modules into a folder on sys.path; forget them afterwards."""
    written: list[str] = []

    def write(name: str, source: str, folder: Path = tmp_path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{name.rpartition('.')[2]}.py").write_text(textwrap.dedent(source))
        written.append(name)

    monkeypatch.syspath_prepend(str(tmp_path))
    yield write
    for name in written:
        sys.modules.pop(name, None)
        parent, _, child = name.rpartition(".")
        if parent and hasattr(sys.modules[parent], child):
            delattr(sys.modules[parent], child)


def test_a_module_of_dragon_tasks_is_a_task_when_it_declares_task_name(
    tmp_path, monkeypatch, modules
):
    # A helper module beside the tasks (no TASK_NAME) is imported and left out: no list of
    # exceptions to keep, and it cannot break start-up.
    extra = tmp_path / "more_tasks"
    modules("dragon.tasks.shared_helpers", "def helper() -> int:\n    return 1\n", extra)
    modules("dragon.tasks.hello_again", TASK.format(name="hello.again"), extra)
    monkeypatch.setattr(dragon.tasks, "__path__", [*dragon.tasks.__path__, str(extra)])
    registry = load_tasks()
    assert registry["hello.again"].module == "dragon.tasks.hello_again"
    assert "dragon.tasks.shared_helpers" in sys.modules
    assert {spec.module for spec in registry.values()}.isdisjoint(
        {"dragon.tasks.shared_helpers", "dragon.tasks.schema", "dragon.tasks.context"}
    )
    assert "hello.again" in builtin_tasks()


def test_the_builtin_tasks():
    registry = builtin_tasks()
    assert {"hello", "image.thumb", "video.create", "html.scrape"} <= set(registry)
    assert all(spec.module.startswith("dragon.tasks.") for spec in registry.values())
    hello = registry["hello"]
    assert (hello.heavy, hello.module) == (False, "dragon.tasks.hello")
    assert registry["image.thumb"].heavy
    # The tasks that send their file to a platform say where its URL is; no other does.
    sending = {name: spec.sent_outputs for name, spec in registry.items() if spec.sent_outputs}
    assert sending == {
        "video.upload.youtube": {"output"},
        "video.upload.vimeo": {"output"},
        "video.upload.fb": {"output"},
    }


def test_modules_named_in_settings_come_after_the_builtin_ones(modules):
    modules("extra_hello", TASK.format(name="extra.hello"))
    registry = load_tasks(("extra_hello",))
    assert registry["extra.hello"].module == "extra_hello"
    assert set(registry) == {*builtin_tasks(), "extra.hello"}


def test_a_name_declared_twice_is_refused(modules):
    modules("second_hello", TASK.format(name="hello"))
    with pytest.raises(AlreadyRegistered, match="'hello' is declared by second_hello and by"):
        load_tasks(("second_hello",))


def test_a_named_module_that_is_not_a_task_says_what_it_lacks(modules):
    modules("not_a_task", 'HEAVY = "yes"\n\ndef run(ctx):\n    return 1\n')
    with pytest.raises(NotATask) as caught:
        load_tasks(("not_a_task",))
    assert str(caught.value) == (
        "not_a_task is not a task module: TASK_NAME must be a non-empty string; HEAVY must be"
        " True or False; Schema must be a marshmallow Schema class; run must be an async function"
    )


def test_sent_outputs_must_be_field_names(modules):
    source = TASK.format(name="sender") + 'SENT_OUTPUTS = "output"\n'
    modules("sender", source)
    with pytest.raises(NotATask, match="SENT_OUTPUTS must be a tuple of field names"):
        load_tasks(("sender",))


def test_an_installed_plugin_registers_its_tasks_through_entry_points(tmp_path, modules):
    """A distribution on sys.path declaring ``dragon.tasks`` entry points, as ``pip install``
    leaves it: its tasks join the registry with no setting. An entry point may name the
    module or an attribute of it."""
    modules("blur_plugin", TASK.format(name="plugin.blur"))
    modules("sharpen_plugin", TASK.format(name="plugin.sharpen"))
    info = tmp_path / "dragon_demo_plugin-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: dragon-demo-plugin\nVersion: 1.0\n"
    )
    (info / "entry_points.txt").write_text(
        "[dragon.tasks]\nblur = blur_plugin\nsharpen = sharpen_plugin:run\n"
    )
    registry = load_tasks()
    assert registry["plugin.blur"].module == "blur_plugin"
    assert registry["plugin.sharpen"].module == "sharpen_plugin"
    assert "plugin.blur" not in builtin_tasks()  # docs/tasks.md lists what dragon ships
    # Named in the setting as well as installed: one module, one name, declared twice.
    with pytest.raises(AlreadyRegistered, match="'plugin.blur' is declared by blur_plugin"):
        load_tasks(("blur_plugin",))
