"""The docs keep up with the code: every setting is documented, the README's commands exist,
and the code cites only documents that ship with it."""

import re
from pathlib import Path

from dragon.config import SETTINGS, render_docs
from dragon.tasks import builtin_tasks
from dragon.tasks.reference import render

ROOT = Path(__file__).resolve().parents[2]


def test_settings_reference_is_current():
    text = (ROOT / "docs" / "settings.md").read_text()
    assert text == render_docs(), "regenerate: python -m dragon.config > docs/settings.md"
    assert all(f"`{s.env}`" in text for s in SETTINGS)


def test_readme_shows_the_two_commands():
    readme = (ROOT / "README.md").read_text()
    assert "make run" in readme and "make test" in readme


def test_readme_lists_the_builtin_tasks_and_links_every_doc():
    readme = (ROOT / "README.md").read_text()
    [listing] = re.findall(r"^Tasks: .*?\n\n", readme, re.S | re.M)
    listed = re.findall(r"`([^`]+)`", listing)
    assert sorted(listed) == sorted(builtin_tasks()), "README's task list is not the registry's"
    unlinked = [p.name for p in (ROOT / "docs").glob("*.md") if f"(docs/{p.name})" not in readme]
    assert not unlinked, f"README's Docs list lacks {unlinked}"


def test_task_reference_is_current():
    text = (ROOT / "docs" / "tasks.md").read_text()
    assert text == render(), "regenerate: python -m dragon.tasks.reference > docs/tasks.md"
    assert re.findall(r"^## `(.+)`$", text, re.M) == sorted(builtin_tasks())


def test_the_files_a_new_task_touches_are_files_of_the_repository():
    """The guide's list of files names real ones; only the example's own module is new."""
    guide = (ROOT / "docs" / "writing-tasks.md").read_text()
    [section] = re.findall(
        r"^## The files a new task touches\n(.*?)(?=^## |\Z)", guide, re.S | re.M
    )
    paths = re.findall(r"`((?:dragon|docs|tests)/[^`]+|[A-Z]+\.md)`", section)
    assert {"docs/tasks.md", "README.md", "CHANGELOG.md"} <= set(paths)
    assert [path for path in paths if not (ROOT / path).exists()] == ["dragon/tasks/image_grey.py"]


# Notes that lived beside the project but not in it: a reader who clones the repository
# cannot open them, so code and tests cite docs/ (or say the reason) instead.
OUTSIDE_DOCUMENTS = re.compile(
    r"\b(?:SXML|COMPAT|PERFORMANCE|RELIABILITY|DESIGN|STYLE)\.md\b|\bRELIABILITY\b"
    r"|\bseed chapter\b|(?<![-\w])seed \d|\bthe seed\b|\bseed/|\bshared/"
    r"|dragon-tasks-api\.md|dragon-v1-api\.rst"
)
SOURCE_SUFFIXES = {".py", ".js", ".css", ".html", ".sh", ".md", ".txt", ".toml", ".cfg"}


def outside_citations(roots=("dragon", "tests", "scripts")) -> list[str]:
    found = []
    for root in roots:
        for path in sorted((ROOT / root).rglob("*")):
            if path.suffix not in SOURCE_SUFFIXES or path == Path(__file__).resolve():
                continue
            if "node_modules" in path.parts:  # the npm test clients' own code
                continue
            for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
                if OUTSIDE_DOCUMENTS.search(line):
                    found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    return found


def test_code_cites_no_document_outside_the_repository():
    found = outside_citations()
    assert not found, "cite docs/*.md or say why in our own words:\n" + "\n".join(found)


def test_outside_citations_are_recognised():
    md = ".md"  # spelled apart so that this file does not cite them itself
    cited = [
        "(COMPAT" + md + " 5.2)",
        "RELIABILITY §1",
        "seed chapter 3",
        "(seed 1.7)",
        "the seed's shape",
        "../" + "shared/bench/x.sh",
        "seed/dragon-tasks-api.md",
        "SXML" + md + " 6.2",
    ]
    ours = [
        "docs/compat.md",
        "def f(seed):",
        "--seed 0",
        "seeded from (seed, i)",
        "shared_downloads",
        "dragon/sxml/",
    ]
    assert all(OUTSIDE_DOCUMENTS.search(text) for text in cited)
    assert not any(OUTSIDE_DOCUMENTS.search(text) for text in ours)


async def test_the_writing_tasks_example_runs(tmp_path):
    """docs/writing-tasks.md's image.grey, run as written on a generated image."""
    import types

    from PIL import Image

    from tests.support.context import local_ctx

    text = (ROOT / "docs" / "writing-tasks.md").read_text()
    [source] = [b for b in re.findall(r"```python\n(.*?)```", text, re.S) if "image.grey" in b]
    module = types.ModuleType("image_grey")
    exec(compile(source, "writing-tasks.md", "exec"), module.__dict__)
    Image.new("RGB", (64, 48), (200, 30, 90)).save(tmp_path / "a.png")
    url = "https://example.com/a.png"
    params = module.Schema().load({"url": url, "levels": 2})
    ctx = local_ctx(tmp_path, params, {url: tmp_path / "a.png"})
    assert await module.run(ctx) == {"width": 64, "height": 48}
    with Image.open(ctx.outputs["output"]) as out:
        assert out.mode == "L" and {v for _, v in out.getcolors()} <= {0, 255}
