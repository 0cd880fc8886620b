"""SXML duration resolution (dragon.sxml.timing): worked examples and more.

Pure: definitions are parsed and timed with made-up file lengths, nothing is rendered.
"""

from __future__ import annotations

import pytest

from dragon.sxml.model import DefinitionError
from dragon.sxml.parse import parse
from dragon.sxml.timing import resolve

LENGTHS = {"A": 200.0, "music": 180.0, "V": 12.0, "clip": 8.0, "short": 3.0}


def timed(body_xml: str, *, max_duration: float = 600.0):
    """Parse ``<movie><body>body_xml</body></movie>`` and time it; return (body, warnings)."""
    xml = f'<movie service="craftsman-1.0"><body>{body_xml}</body></movie>'
    definition = parse(xml)

    def length(node):
        return LENGTHS[node.attrs["filename"].rsplit("/", 1)[-1]]

    warnings = resolve(definition.body, length, max_duration=max_duration)
    return definition.body, warnings


def span(node) -> tuple[float, float]:
    return round(node.begin, 6), round(node.end, 6)


def audio(name: str, **attrs: str) -> str:
    extra = "".join(f' {k.replace("_", "-")}="{v}"' for k, v in attrs.items())
    return f'<audio filename="http://media.test/{name}"{extra}/>'


IMAGE = '<image filename="http://media.test/i.jpg"/>'
IMAGE2 = '<image filename="http://media.test/j.jpg"/>'


def still(**attrs: str) -> str:
    extra = "".join(f' {k.replace("_", "-")}="{v}"' for k, v in attrs.items())
    return f'<effect type="none"{extra}>{IMAGE}</effect>'


# -- worked examples -----------------------------------------------------------------------


def test_diving_then_audio_plays_after_the_pictures():
    body, _ = timed(f'<effect type="diving">{IMAGE}{IMAGE2}</effect>{audio("A")}')
    effect, track = body.children
    assert body.duration == 205
    assert span(effect) == (0, 5)
    assert span(track) == (5, 205)


def test_bound_audio_takes_the_stack_duration():
    body, _ = timed(f"<stack>{still(duration='10')}{audio('A', duration='..')}</stack>")
    stack = body.children[0]
    assert body.duration == 10
    assert span(stack.children[1]) == (0, 10)


def test_audio_drives_a_stack_and_stretches_the_effect():
    body, _ = timed(f"<stack>{still()}{audio('A')}</stack>")
    effect, track = body.children[0].children
    assert body.duration == 200
    assert span(effect) == (0, 200)
    assert span(track) == (0, 200)


def test_margin_both_places_audio_inside_a_fixed_stack():
    body, _ = timed(
        f'<stack duration="15">{still()}{audio("A", margin_both="2", fadeout="2")}</stack>'
    )
    track = body.children[0].children[1]
    assert span(track) == (2, 13)
    fade_start = track.begin + track.duration - track.number("fadeout")
    assert fade_start == 11


def test_transition_shortens_the_sequence():
    body, _ = timed(
        f'<stack duration="10">{still()}</stack>'
        f'<transition type="crossfade" duration="2"/>'
        f'<stack duration="15">{still()}</stack>'
    )
    first, transition, second = body.children
    assert body.duration == 23
    assert span(first) == (0, 10)
    assert span(transition) == (8, 10)
    assert span(second) == (8, 23)


def test_overlay_between_margins():
    body, _ = timed(
        f'<stack duration="4"><overlay margin-start="1" margin-end="2">{IMAGE}</overlay></stack>'
    )
    assert span(body.children[0].children[0]) == (1, 2)


def test_overlay_duration_anchored_at_the_end():
    body, _ = timed(
        f'<stack duration="4"><overlay duration="2" margin-end="0">{IMAGE}</overlay></stack>'
    )
    assert span(body.children[0].children[0]) == (2, 4)


def test_voice_over_plus_margin_drives_the_stack():
    body, _ = timed(
        f"<stack>{still()}{audio('music', duration='..')}{audio('V', margin_end='2')}</stack>"
    )
    effect, music, voice = body.children[0].children
    assert body.duration == 14
    assert span(effect) == (0, 14)
    assert span(music) == (0, 14)
    assert span(voice) == (0, 12)


# -- more ---------------------------------------------------------------------------------


def test_flexible_items_of_a_sequence_last_five_seconds():
    body, _ = timed(still() + still() + '<text type="zone">Hi</text>')
    assert body.duration == 15
    assert [span(c) for c in body.children] == [(0, 5), (5, 10), (10, 15)]


def test_explicit_effect_duration_wins_over_the_default():
    body, _ = timed(still(duration="2.5") + still())
    assert body.duration == 7.5


def test_video_natural_length_uses_skip_and_speed():
    body, _ = timed(
        '<effect type="none"><video filename="http://media.test/clip" skip="2" speed="2"/></effect>'
    )
    assert body.duration == 3.0  # (8 - 2) / 2


def test_bare_video_in_a_sequence_plays_its_length():
    body, _ = timed('<video filename="http://media.test/clip"/>' + still(duration="1"))
    assert body.duration == 9.0


def test_fixed_stack_truncates_a_longer_child():
    body, _ = timed(
        f'<stack duration="4">{audio("A")}<effect type="none" duration="6">{IMAGE}</effect></stack>'
    )
    track, effect = body.children[0].children
    assert span(track) == (0, 4)
    assert effect.duration == 6 and span(effect) == (0, 4)


def test_fixed_sequence_truncates_its_last_items():
    body, _ = timed(
        f'<sequence duration="7">{still(duration="5")}{still(duration="5")}'
        f"{still(duration='5')}</sequence>"
    )
    first, second, third = body.children[0].children
    assert span(first) == (0, 5)
    assert span(second) == (5, 7)
    assert third.begin == 10 and third.end == third.begin  # after the end: invisible


def test_nested_stack_in_sequence_takes_time_from_its_content():
    body, _ = timed(f"<stack>{still()}{audio('short')}</stack>{still(duration='2')}")
    stack, effect = body.children
    assert span(stack) == (0, 3)
    assert span(effect) == (3, 5)


def test_text_in_a_stack_takes_the_stack_duration():
    body, _ = timed(f'<stack>{still(duration="6")}<text type="legend">Hi</text></stack>')
    assert span(body.children[0].children[1]) == (0, 6)


def test_margin_start_with_duration():
    body, _ = timed('<stack duration="10"><text margin-start="3" duration="2">x</text></stack>')
    assert span(body.children[0].children[0]) == (3, 5)


def test_only_margin_start_fills_the_rest():
    body, _ = timed('<stack duration="10"><text margin-start="3">x</text></stack>')
    assert span(body.children[0].children[0]) == (3, 10)


def test_margins_count_in_the_stack_natural_duration():
    body, _ = timed(f"<stack>{audio('short', margin_start='1', margin_end='2')}</stack>")
    assert body.duration == 6
    assert span(body.children[0].children[0]) == (1, 4)


def test_multi_media_effect_shares_its_duration():
    body, _ = timed(
        f'<effect type="diving" duration="10">{IMAGE}'
        f'<video filename="http://media.test/clip"/></effect>'
    )
    image, video = body.children[0].children
    assert image.begin == 0 and video.end == 10
    assert video.begin == pytest.approx(4.5)  # 5 s slots overlapping by the 1 s dive
    assert image.duration == video.duration == pytest.approx(5.5)


def test_multi_media_effect_natural_is_the_sum_of_its_videos():
    body, _ = timed(
        '<effect type="sliding"><video filename="http://media.test/clip"/>'
        '<video filename="http://media.test/short"/></effect>'
    )
    assert body.duration == 11


def test_long_transition_is_clamped_with_a_warning():
    body, warnings = timed(still(duration="2") + '<transition duration="5"/>' + still(duration="3"))
    assert body.duration == 3
    assert body.children[1].natural == 2
    assert any("shortened" in w for w in warnings)


def test_transitions_around_one_item_never_overlap():
    body, _ = timed(
        still(duration="4")
        + '<transition duration="3"/>'
        + still(duration="4")
        + '<transition duration="3"/>'
        + still(duration="4")
    )
    first, t1, second, t2, third = body.children
    assert t1.natural == 3 and t2.natural == 1
    assert t1.end <= t2.begin


def test_default_transition_lasts_one_second():
    body, _ = timed(still() + "<transition/>" + still())
    assert body.duration == 9


def test_looped_audio_fills_its_parent():
    body, _ = timed(f"<stack>{still(duration='30')}{audio('short', loop='true')}</stack>")
    assert span(body.children[0].children[1]) == (0, 30)


def test_explicit_audio_duration():
    body, _ = timed(audio("A", duration="4") + still(duration="1"))
    assert body.duration == 5


def test_alpha_filter_is_placed_inside_its_parent():
    body, _ = timed(
        f'<effect type="none" duration="6">{IMAGE}'
        f'<filter type="alpha" alphaStart="1" alphaEnd="0" duration="2" '
        f'margin-end="0"/></effect>'
    )
    fade = body.children[0].kids({"filter"})[0]
    assert span(fade) == (4, 6)


def test_widget_items_and_music():
    body, _ = timed(
        '<widget type="director.theme.classic"><track type="video">'
        '<image filename="http://media.test/i.jpg" duration="3.0"/>'
        '<text duration="4.0">Title</text>'
        '<video filename="http://media.test/clip"/></track>'
        '<track type="audio"><audio filename="http://media.test/music"/></track>'
        "</widget>"
    )
    assert body.duration == pytest.approx(3 + 4 + 8 - 2 * 0.5)
    music = body.children[0].children[1]
    assert span(music) == (0, pytest.approx(14))


def test_total_over_the_limit_is_a_definition_error():
    with pytest.raises(DefinitionError, match="longer than the 100 s allowed"):
        timed(audio("A"), max_duration=100)


def test_empty_movie_is_an_error():
    with pytest.raises(DefinitionError, match="0 seconds"):
        timed(still(duration="0"))


# -- windows: cutting a long movie into bounded renders (dragon.sxml.segments) -----------


def slideshow(count: int) -> str:
    items = [
        f'<effect type="kenburns" duration="6"><image filename="http://media.test/{i}.jpg"/>'
        f"</effect>"
        for i in range(count)
    ]
    return (
        "<stack><sequence>"
        + '<transition type="crossfade" duration="1"/>'.join(items)
        + '</sequence><text type="legend">x</text></stack>'
    )


def windows_of(body, budget: int):
    from fractions import Fraction

    from dragon.sxml.filtergraph import Graph
    from dragon.sxml.segments import windows
    from dragon.sxml.stills import Raster

    rasters = {
        n.uid: Raster("x", 0, 0, 640, 360, False, 1280 * 720)
        for n in body.walk()
        if n.tag in ("image", "text")
    }
    graph = Graph(640, 360, Fraction(25))
    return graph, windows(body, graph, rasters, {}, budget)


def test_a_small_movie_is_one_window():
    body, _ = timed(slideshow(3))
    graph, windows = windows_of(body, budget=10**9)
    assert windows == [(0, graph.frame(body.end))]


def test_windows_cover_the_movie_within_budget_and_never_cut_a_transition():
    body, _ = timed(slideshow(12))
    still = 1280 * 720 * 3 // 2 * 3
    graph, windows = windows_of(body, budget=4 * still)
    assert len(windows) > 3
    assert windows[0][0] == 0 and windows[-1][1] == graph.frame(body.end)
    assert all(a[1] == b[0] for a, b in zip(windows, windows[1:], strict=False))
    transitions = [
        (graph.frame(t.begin), graph.frame(t.end)) for t in body.walk() if t.tag == "transition"
    ]
    for _, cut in windows[:-1]:
        assert not any(a < cut < b for a, b in transitions)
    images = [
        (graph.frame(n.begin), graph.frame(n.end))
        for n in body.walk()
        if n.tag in ("image", "text")
    ]
    for first, end in windows:
        assert sum(1 for a, b in images if a < end and b > first) <= 4


# -- cuts on the beat (beatsync) -----------------------------------------------------------


def test_snapping_moves_cuts_to_the_nearest_allowed_beats():
    from dragon.sxml import beatsync

    body, _ = timed(
        '<sequence sync="beats">'
        + still(duration="1.3")
        + still(duration="0.2")
        + '<transition duration="0.4"/>'
        + still(duration="2.2")
        + "</sequence>"
    )
    sequence = body.children[0]
    beats = [0.5 * k for k in range(1, 20)]
    assert beatsync.snap(sequence, beats) is None
    resolve(body, lambda n: None, max_duration=600)
    first, second, third = sequence.content
    assert first.end == pytest.approx(1.5)  # 1.3 -> 1.5
    # 0.2 s would end on the same beat: it keeps one beat; the transition keeps the
    # 0.2 s it was clamped to, its middle on the beat.
    assert second.begin == pytest.approx(1.5) and third.begin + 0.1 == pytest.approx(2.0)
    assert third.end == pytest.approx(3.5)  # the end snaps (3.3 -> 3.5)


def test_snapping_with_too_few_beats_keeps_the_later_lengths():
    from dragon.sxml import beatsync

    body, _ = timed(
        '<sequence sync="downbeats">'
        + still(duration="1")
        + still(duration="1")
        + still(duration="1")
        + "</sequence>"
    )
    sequence = body.children[0]
    warning = beatsync.snap(sequence, [0.9, 2.1])
    resolve(body, lambda n: None, max_duration=600)
    assert "too few beats" in warning
    assert [round(c.end, 6) for c in sequence.content] == [0.9, 2.1, 3.1]


def test_a_bound_track_offers_beats_past_its_current_end():
    from dragon.sxml import beatsync

    body, _ = timed(
        f"<stack>{still(duration='3')}{audio('music', duration='..', skip='1')}</stack>"
    )
    music = body.children[0].children[1]
    assert beatsync.movie_times(music, [0.5, 1.5, 2.5, 9.5], 180.0) == [0.5, 1.5, 8.5]


def test_snapping_moves_a_fixed_sequence_end_to_a_beat():
    from dragon.sxml import beatsync

    body, _ = timed(
        '<sequence sync="beats" duration="3.2">'
        + still(duration="1.3")
        + still(duration="2.2")
        + "</sequence>"
    )
    sequence = body.children[0]
    assert beatsync.snap(sequence, [0.5 * k for k in range(1, 20)]) is None
    assert sequence.attrs["duration"] == "3.000000"  # 3.2 -> 3.0, not the items' 3.5
    resolve(body, lambda n: None, max_duration=600)
    assert [span(c) for c in sequence.content] == [(0.0, 1.5), (1.5, 3.0)]


def test_depth_enable_false_draws_an_effect_flat():
    """The same grow and slide on two effects: with depthEnable="false" the depth is left
    out, the slide kept; a value that is not a boolean is warned about and depth drawn."""
    from dragon.sxml import motion

    def tracks(extra: str) -> motion.Tracks:
        body, _ = timed(
            f'<effect type="none" duration="2"{extra}>{IMAGE}'
            '<animator type="grow" growStart="-1"/><animator type="slide-in"/></effect>'
        )
        [effect] = body.children
        return motion.tracks(effect, (0, 0, 640, 360), (640, 360), lambda t: round(25 * t), 25)

    deep, flat = tracks(""), tracks(' depthEnable="false"')
    assert deep.depth and not flat.depth
    assert flat.dx == deep.dx and flat.dx
    assert tracks(' depthEnable="maybe"').depth  # not refused: read as true (and warned)
