"""The render cost estimate (dragon.sxml.cost) and how a render out of memory is told.

Pure: definitions are parsed and timed, nothing is rendered; the weights and calibration
are in dragon/sxml/cost.py.
"""

from __future__ import annotations

from fractions import Fraction

import pytest

from dragon import errors
from dragon.runtime import processes
from dragon.sxml import cost, render
from dragon.sxml.filtergraph import Graph
from dragon.sxml.parse import parse
from dragon.sxml.timing import resolve

HD = (1920, 1080, Fraction(25))


def timed(body_xml: str, media_length: float = 10.0):
    definition = parse(f'<movie service="craftsman-1.0"><body>{body_xml}</body></movie>')
    resolve(definition.body, lambda node: media_length, max_duration=600.0)
    return definition.body


def still(seconds: float, color: str = "#ff0000") -> str:
    return f'<effect type="none" duration="{seconds:g}"><image color="{color}"/></effect>'


def test_one_still_costs_its_frames_and_one_layer():
    body = timed(still(10))
    assert cost.layer_seconds(body) == pytest.approx(10 * (cost.ENCODE + cost.LAYER))
    expected = cost.SECONDS_PER_UNIT * 1920 * 1080 * 25 * 15 + cost.PER_MEDIA
    assert cost.estimate(body, [HD]) == pytest.approx(expected)


def test_transitions_cost_their_mixed_seconds():
    plain = timed(still(2) * 3)
    mixed = timed('<transition type="crossfade" duration="1"/>'.join([still(2)] * 3))
    # Two 1 s crossfades: a shorter movie (4 s, not 6) with 2 s of both sides mixed.
    expected = 4 * cost.ENCODE + 6 * cost.LAYER + 2 * cost.BLEND
    assert cost.layer_seconds(mixed) == pytest.approx(expected)
    assert cost.layer_seconds(plain) == pytest.approx(6 * (cost.ENCODE + cost.LAYER))


def test_videos_and_multi_media_effects_weigh_more():
    video = timed('<effect type="none"><video filename="http://media.test/v.mp4"/></effect>')
    assert cost.layer_seconds(video) == pytest.approx(10 * (cost.ENCODE + cost.VIDEO_LAYER))
    images = "".join(f'<image color="#00{i:02x}00"/>' for i in range(4))
    rotator = timed(f'<effect type="rotator" duration="8">{images}</effect>')
    # Four slots overlapping by the 1 s turn: three turns inside the effect.
    assert cost.layer_seconds(rotator) == pytest.approx(
        8 * cost.ENCODE + 11 * cost.LAYER + 3 * cost.BLEND
    )


def test_each_rendering_adds_its_own_cost():
    body = timed(still(10))
    preview = (426, 240, Fraction(25))
    both = cost.estimate(body, [HD, preview])
    assert both == pytest.approx(cost.estimate(body, [HD]) + cost.estimate(body, [preview]))
    assert cost.estimate(body, []) == 0


def test_the_default_bound_refuses_heavy_movies_not_long_plain_ones():
    slide = '<stack duration="2">' + still(2) + '<text type="legend">Slide</text></stack>'
    heavy = timed('<transition type="crossfade" duration="1"/>'.join([slide] * 501))
    assert cost.estimate(heavy, [HD]) > 900
    # The longest movie allowed (600 s), one video at 1080p, stays under it.
    video = timed('<effect type="none"><video filename="http://t/v.mp4"/></effect>', 600.0)
    assert video.end == 600
    assert 600 < cost.estimate(video, [HD]) < 900


def test_a_thread_that_cannot_start_under_the_memory_limit_is_a_resource_limit(monkeypatch):
    monkeypatch.setattr(processes, "_tool_memory", 2**30)
    stderr = (
        "[auto_scale_6 @ 0x55] Failed to configure output pad on auto_scale_6\n"
        "Error reinitializing filters!\n"
        "Failed to inject frame into filter network: Resource temporarily unavailable\n"
    )
    with pytest.raises(errors.TaskError) as caught:
        processes.memory_exhausted(["ffmpeg", "-i", "x"], 1, stderr)
    assert caught.value.code == errors.RESOURCE_LIMIT
    assert "DRAGON_TOOL_MEMORY_BYTES" in caught.value.message
    monkeypatch.setattr(processes, "_tool_memory", 0)  # no limit: the tool's own failure
    processes.memory_exhausted(["ffmpeg", "-i", "x"], 1, stderr)


def graph_failure(code: str, stderr: str) -> errors.TaskError:
    error = errors.TaskError(code, f"ffmpeg failed: {stderr.strip()}")
    error.stage, error.tool = "process", {"argv": ["ffmpeg"], "exit_code": 1, "stderr": stderr}
    return error


def test_an_unbuildable_graph_says_what_to_do(monkeypatch):
    graph = Graph(1920, 1080, Fraction(25))
    graph.input(["-i", "a.png"])
    failed = graph_failure(errors.PROCESS_FAILED, "Error marking filters as finished\n")
    monkeypatch.setattr(processes, "_tool_memory", 2 * 2**30)
    out = render.unbuildable(failed, graph)
    assert out.code == errors.RESOURCE_LIMIT
    assert "2048 MiB" in out.message and "DRAGON_TOOL_MEMORY_BYTES" in out.message
    assert "1 inputs at 1920x1080" in out.message and "filters" not in out.message
    assert out.tool == failed.tool and out.stage == "process"  # ffmpeg's text, for diagnostics
    monkeypatch.setattr(processes, "_tool_memory", 0)
    out = render.unbuildable(failed, graph)
    assert out.code == errors.PROCESS_FAILED and "smaller profile" in out.message
    # Other failures are left as they are.
    other = graph_failure(errors.PROCESS_FAILED, "Invalid data found when processing input\n")
    assert render.unbuildable(other, graph) is other
    # A graph ffmpeg could not read is our bug, not the movie's size: left as it failed.
    ours = graph_failure(
        errors.PROCESS_FAILED,
        "[AVFilterGraph @ 0x1] No option name near 'enable=1'\n"
        "Error initializing complex filters.\n",
    )
    assert render.unbuildable(ours, graph) is ours
    # Out of room, ffmpeg may fail to read the graph too: that is still the movie's size.
    short = graph_failure(
        errors.PROCESS_FAILED,
        "Error parsing a filter description around: [v3]\n"
        "Error initializing complex filters.\nCannot allocate memory\n",
    )
    assert render.unbuildable(short, graph).code == errors.PROCESS_FAILED
    assert "smaller profile" in render.unbuildable(short, graph).message
