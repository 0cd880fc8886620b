"""The docs keep up with the code: every setting is documented, the README's commands exist."""

from pathlib import Path

from dragon.config import SETTINGS, render_docs
from dragon.tasks import load_tasks
from dragon.tasks.reference import render

ROOT = Path(__file__).resolve().parents[2]


def test_settings_reference_is_current():
    text = (ROOT / "docs" / "settings.md").read_text()
    assert text == render_docs(), "regenerate: python -m dragon.config > docs/settings.md"
    assert all(f"`{s.env}`" in text for s in SETTINGS)


def test_readme_shows_the_two_commands():
    readme = (ROOT / "README.md").read_text()
    assert "make run" in readme and "make test" in readme


def test_task_reference_is_current():
    text = (ROOT / "docs" / "tasks.md").read_text()
    assert text == render(), "regenerate: python -m dragon.tasks.reference > docs/tasks.md"
    assert all(f"## `{name}`" in text for name in load_tasks())
