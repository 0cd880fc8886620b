"""How ``render.render`` splits a rendering into ffmpeg runs (dragon.sxml.render).

The runs themselves (``render_window``, ``join``), the drawing and the memory windows are
replaced by recorders: these tests check which runs are asked for, with which frames,
files and options. tests/e2e/test_video_create.py renders for real.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from dragon.sxml import assets, profiles, render, segments

PROFILE = profiles.get("360p")  # 25 frames a second: a 4 s movie has 100 frames
BUDGET = 123


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = []

    async def __call__(self, *args: Any, **kwargs: Any) -> None:
        self.calls.append((args, kwargs))


class Ctx:
    def __init__(self, tmpdir: Path) -> None:
        self.tmpdir = tmpdir
        self.settings = SimpleNamespace(video_create_memory_bytes=BUDGET)
        self.progressed: list[float] = []

    def progress(self, value: float) -> None:
        self.progressed.append(value)


@pytest.fixture
def runs(monkeypatch, tmp_path):
    """Windows of 40 and 60 frames unless a test sets ``runs.windows``; records the runs."""
    state = SimpleNamespace(
        ctx=Ctx(tmp_path),
        movie=SimpleNamespace(body=SimpleNamespace(end=4.0), media={}),
        windows=[(0, 40), (40, 100)],
        window=Recorder(),
        join=Recorder(),
        drawn_jobs=[],
        budgets=[],
    )

    async def draw(ctx, jobs):
        state.drawn_jobs.append(jobs)
        return {uid: f"drawn {job}" for uid, job in jobs.items()}

    def windows(body, graph, rasters, media, budget):
        state.budgets.append(budget)
        state.rasters = rasters
        return state.windows

    monkeypatch.setattr(render, "plan_assets", lambda *a: {1: "job 1", 2: "job 2"})
    monkeypatch.setattr(assets, "draw", draw)
    monkeypatch.setattr(segments, "windows", windows)
    monkeypatch.setattr(render, "render_window", state.window)
    monkeypatch.setattr(render, "join", state.join)
    return state


async def call(runs, **kwargs: Any) -> None:
    options = {"video": None, "preset": "fast", "crf": 20} | kwargs
    await render.render(runs.ctx, runs.movie, PROFILE, "export", print, **options)


async def test_one_window_is_one_run_with_the_sound(runs, tmp_path):
    runs.windows = [(0, 100)]
    video, thumb = tmp_path / "export.mp4", tmp_path / "t.jpg"
    await call(runs, video=video, thumbnail=(thumb, 1.0), progress=True, drawn={1: "r1", 3: "r3"})
    # Drawn earlier and still needed: kept; the rest drawn now; the budget is the setting's.
    assert runs.drawn_jobs == [{2: "job 2"}]
    assert runs.rasters == {1: "r1", 2: "drawn job 2"}
    assert runs.budgets == [BUDGET]
    [(args, kwargs)] = runs.window.calls
    assert args == (runs.ctx, runs.movie, PROFILE, runs.rasters, print, None)
    assert kwargs == {
        "video": video,
        "thumbnail": (thumb, 25),
        "sound": True,
        "preset": "fast",
        "crf": 20,
        "progress": True,
    }
    assert runs.join.calls == []


async def test_several_windows_are_encoded_apart_then_joined(runs, tmp_path):
    video, thumb = tmp_path / "export.mp4", tmp_path / "t.jpg"
    await call(runs, video=video, thumbnail=(thumb, 2.0), progress=True)
    parts = [tmp_path / "export-0.mp4", tmp_path / "export-1.mp4"]
    assert [(args[5], kwargs) for args, kwargs in runs.window.calls] == [
        ((0, 40), {"video": parts[0], "thumbnail": None, "preset": "fast", "crf": 20}),
        ((40, 100), {"video": parts[1], "thumbnail": (thumb, 50), "preset": "fast", "crf": 20}),
    ]
    assert runs.ctx.progressed == [pytest.approx(39.6), pytest.approx(99.0)]
    assert runs.join.calls == [((runs.ctx, runs.movie, PROFILE, parts, video), {})]


async def test_without_progress_the_parts_report_none(runs, tmp_path):
    await call(runs, video=tmp_path / "export.mp4")
    assert len(runs.window.calls) == 2 and runs.ctx.progressed == []


async def test_a_thumbnail_alone_runs_only_its_window(runs, tmp_path):
    thumb = tmp_path / "t.jpg"
    await call(runs, thumbnail=(thumb, 10.0))  # past the end: the last frame
    [(args, kwargs)] = runs.window.calls
    assert args[5] == (40, 100) and kwargs == {"thumbnail": (thumb, 99)}
    assert runs.join.calls == []


async def test_nothing_to_make_is_a_programming_error(runs):
    with pytest.raises(ValueError, match="video or a thumbnail"):
        await call(runs)
