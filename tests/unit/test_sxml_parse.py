"""SXML parsing and checking (dragon.sxml.parse), hostile XML, and the pure helpers the
renderer relies on (profiles, placement, text clean-up, transition names).

No server, no rendering: these run in milliseconds.
"""

from __future__ import annotations

import time
import tracemalloc

import pytest
from marshmallow import ValidationError

from dragon.sxml import layout, profiles
from dragon.sxml.parse import MAX_DEPTH, DefinitionErrors, parse
from dragon.sxml.text import clean
from dragon.sxml.transitions import xfade
from dragon.tasks.video_create import Schema

IMAGE = '<image filename="http://media.test/i.jpg"/>'


def movie(body: str) -> str:
    return f'<movie service="craftsman-1.0"><body>{body}</body></movie>'


def errors_of(xml: str) -> list[str]:
    with pytest.raises(DefinitionErrors) as info:
        parse(xml)
    return info.value.messages


# -- hostile XML (docs/security.md) ------------------------------------------------------

BILLION_LAUGHS = (
    '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    + "".join(
        f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">'
        for i in range(1, 10)
    )
    + ']><movie service="craftsman-1.0">&lol9;</movie>'
)
HOSTILE = {
    "billion laughs": BILLION_LAUGHS,
    "external entity": '<?xml version="1.0"?><!DOCTYPE m [<!ENTITY x SYSTEM '
    '"file:///etc/passwd">]><movie service="craftsman-1.0">&x;</movie>',
    "external dtd": '<!DOCTYPE movie SYSTEM "http://127.0.0.1:9/evil.dtd"><movie/>',
    "plain doctype": "<!DOCTYPE movie><movie/>",
    "parameter entity": '<!DOCTYPE m [<!ENTITY % p SYSTEM "file:///etc/passwd"> %p;]><movie/>',
    "depth 10000": "<movie>" + "<stack>" * 10_000 + "</stack>" * 10_000 + "</movie>",
    "element flood": movie("<stack/>" * 20_000),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_xml_is_refused_fast_with_bounded_memory(name):
    # Timed without tracemalloc (which slows parsing several times over); the bound only
    # catches an expansion or a quadratic walk, which would take minutes, not a slow machine.
    started = time.perf_counter()
    errors_of(HOSTILE[name])
    assert time.perf_counter() - started < 10
    tracemalloc.start()
    messages = errors_of(HOSTILE[name])
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 20 * 1024 * 1024
    assert len(messages) == 1
    assert any(word in messages[0] for word in ("DTD", "deeper", "elements"))


def test_hostile_xml_gives_the_parameters_error_shape():
    with pytest.raises(ValidationError) as info:
        Schema().load({"definition": HOSTILE["billion laughs"]})
    assert list(info.value.messages) == ["definition"]
    assert "DTD" in info.value.messages["definition"][0]


def test_depth_limit_is_exact():
    nested = "<stack>" * (MAX_DEPTH - 2) + '<effect type="none">' + IMAGE + "</effect>"
    with pytest.raises(DefinitionErrors, match="deeper"):
        parse(f'<movie service="craftsman-1.0"><body>{nested}</body></movie>')


def test_not_well_formed_names_the_line():
    [message] = errors_of('<movie service="craftsman-1.0">\n<body>\n<stack>\n</body></movie>')
    assert "not well-formed" in message and "(line 4, column 3)" in message


def test_empty_definition():
    assert "empty" in errors_of("   ")[0]


# -- structure: strict -------------------------------------------------------------------


@pytest.mark.parametrize(
    "body, words",
    [
        ('<sphere radius="1"/>', ["<sphere>", "not supported"]),
        ('<effect type="none"><image type="map" zoom="3"/></effect>', ["<image>", "center"]),
        ('<effect type="none"><image type="map" center="95,2"/></effect>', ["<image>", "Earth"]),
        ('<audio voice="neospeech:julie"/>', ["<audio>", "no text to speak"]),
        ("<audio/>", ["<audio>", "filename or text"]),
        ('<widget type="slideshow.reflect.simple.index"/>', ["<widget>", "not supported"]),
        ("<blink/>", ["<blink>", "not an SXML element"]),
        (f'<transition/><effect type="none">{IMAGE}</effect>', ["<transition>", "between"]),
        (
            f'<stack><transition/><effect type="none">{IMAGE}</effect></stack>',
            ["<transition>", "inside <stack>"],
        ),
        (f'<effect type="none">{IMAGE}{IMAGE}</effect>', ["<effect>", "exactly one"]),
        ('<effect type="none"/>', ["<effect>", "exactly one"]),
        ('<effect type="none"><image color="red"/></effect>', ["color", "#RRGGBB"]),
        ('<effect type="none"><image/></effect>', ["<image>", "filename or a color"]),
        (
            '<effect type="none"><image filename="file:///etc/passwd"/></effect>',
            ["<image>", "http or https"],
        ),
        ('<effect type="none"><video filename="concat:a|b"/></effect>', ["<video>", "http"]),
        ('<audio filename="http://u:p@media.test/a.mp3"/>', ["<audio>", "credentials"]),
        (f'<effect type="none" duration="ten">{IMAGE}</effect>', ["duration", "not a number"]),
        (f'<effect type="none" duration="-1">{IMAGE}</effect>', ["duration", "at least 0"]),
        (
            f'<stack><effect type="none" margin-start="1" duration="2" margin-end="1">{IMAGE}'
            "</effect></stack>",
            ["all at once"],
        ),
        (
            f'<stack><effect type="none" margin-both="1" duration="2">{IMAGE}</effect></stack>',
            ["margin-both"],
        ),
        ('<text type="marquee">x</text>', ["<text>", "legend, zone"]),
        ('<text align="sideways">x</text>', ["<text>", "align"]),
        (
            '<effect type="none"><video filename="http://media.test/v.mp4" speed="50"/></effect>',
            ["speed", "at most 10"],
        ),
    ],
)
def test_structural_problems_name_the_element(body, words):
    messages = errors_of(movie(body))
    assert any(all(w in m for w in words) for m in messages), messages
    assert all("(line " in m for m in messages)


def test_error_lines_point_at_the_element():
    xml = '<movie service="craftsman-1.0">\n<body>\n<stack>\n\n  <sphere/>\n</stack></body></movie>'
    assert errors_of(xml) == ["<sphere> is not supported: 3D spheres cannot be rendered (line 5)"]


def test_several_errors_are_listed():
    messages = errors_of(movie("<sphere/><blink/>" + '<audio voice="x"/>'))
    assert len(messages) == 3


def test_root_and_service():
    assert "expected <movie>" in errors_of("<film/>")[0]
    assert "craftsman-1.0" in errors_of('<movie service="slideshow-1.0"><body/></movie>')[0]
    assert "exactly one <body>" in errors_of('<movie service="craftsman-1.0"/>')[0]
    assert "nothing to render" in errors_of(movie(""))[0]


def test_a_movie_without_service_is_told_which_attribute_to_add():
    assert errors_of("<movie><body/></movie>") == [
        '<movie> needs the attribute service="craftsman-1.0" (line 1, column 1)'
    ]
    [message] = errors_of('<movie service="slideshow-1.0"><body/></movie>')
    assert (
        message == '<movie> needs service="craftsman-1.0", not "slideshow-1.0" (line 1, column 1)'
    )


def test_one_line_definitions_say_the_column_of_each_element():
    one_line = movie(
        '<effect type="none"><image filename="http://media.test/a.jpg"/>'
        '<filter type="dof"/></effect>'
        '<effect type="none"><image filename="http://media.test/b.jpg"/>'
        '<filter type="sepia"/></effect>'
    )
    warnings = parse(one_line).warnings
    blur = one_line.index('<filter type="dof"') + 1
    sepia = one_line.index('<filter type="sepia"') + 1
    assert any(f"(line 1, column {blur})" in w and "dof" in w for w in warnings), warnings
    assert any(f"(line 1, column {sepia})" in w and "sepia" in w for w in warnings), warnings
    # An element alone on its line is found by the line.
    assert errors_of(movie("<stack>\n<sphere/>\n</stack>")) == [
        "<sphere> is not supported: 3D spheres cannot be rendered (line 2)"
    ]


def test_media_count_is_limited():
    many = "".join(
        f'<effect type="none"><image filename="http://m.test/{i}.jpg"/></effect>'
        for i in range(301)
    )
    assert any("too many" in m for m in errors_of(movie(many)))


# -- decoration: lenient -----------------------------------------------------------------


def test_decoration_is_accepted_with_warnings():
    definition = parse(
        movie(
            f'<effect type="kenburns" antialias="4">{IMAGE}'
            '<filter type="dof"/></effect>'
            f'<stack><effect type="ripple">{IMAGE}</effect><animator type="slide"/></stack>'
            f'<effect type="none">{IMAGE}</effect><transition type="waterdrop"/>'
            f'<effect type="none">{IMAGE}</effect>'
        )
    )
    text = "\n".join(definition.warnings)
    for word in ("antialias", "dof", "<animator>", "ripple"):
        assert word in text


def test_a_transition_with_nothing_after_it_is_dropped():
    definition = parse(
        movie(
            f'<sequence><effect type="none">{IMAGE}</effect>'
            f'<transition type="move"/></sequence>'
            f'<effect type="none">{IMAGE}</effect><transition/>'
        )
    )
    assert [c.tag for c in definition.body.children] == ["sequence", "effect"]
    assert [c.tag for c in definition.body.children[0].children] == ["effect"]
    assert sum("nothing after it" in w for w in definition.warnings) == 2


@pytest.mark.parametrize(
    "animator, words",
    [
        ('<animator type="wobble"/>', ["<animator>", "slide-in"]),
        ('<animator type="custom"/>', ["<animator>", "<key>"]),
        ('<animator type="custom"><key time="0" pos="left"/></animator>', ["<key>", "pos"]),
        ('<animator type="slide" direction="sideways"/>', ["<animator>", "direction"]),
        ('<animator type="grow" growStart="far"/>', ["growStart", "not a number"]),
    ],
)
def test_unreadable_animators_are_left_out_with_a_warning(animator, words):
    definition = parse(movie(f'<effect type="none">{IMAGE}{animator}</effect>'))
    assert not definition.body.children[0].kids({"animator"})
    messages = definition.warnings
    assert any(all(w in m for w in words) and "ignored" in m for m in messages), messages


def test_what_a_filter_holds_is_ignored_with_a_warning_unless_it_reads_a_picture():
    definition = parse(
        movie(
            f'<effect type="none">{IMAGE}<filter type="blur">{IMAGE}</filter>'
            f'<filter type="lumamask">{IMAGE}</filter></effect>'
        )
    )
    blur, mask = definition.body.children[0].kids({"filter"})
    assert not blur.children and [c.tag for c in mask.children] == ["image"]
    assert sum("what it holds is ignored" in w for w in definition.warnings) == 1


def test_a_clip_in_an_effect_drawn_for_pictures_is_warned_about():
    definition = parse(
        movie('<effect type="panel"><video filename="http://media.test/clip.mp4"/></effect>')
    )
    assert any("drawn for pictures" in w for w in definition.warnings), definition.warnings


def test_unreadable_decoration_values_take_defaults_with_a_warning():
    definition = parse(
        movie(
            f'<effect type="kenburns" direction="inwards">{IMAGE}'
            '<filter type="alpha" alphaStart="-0.3" alphaEnd="1.5"/>'
            '<filter type="alpha" alphaEnd="opaque"/></effect>'
            '<transition type="move" direction="diagonal"/>'
            f'<effect type="none">{IMAGE}</effect>'
        )
    )
    effect, transition = definition.body.children[0], definition.body.children[1]
    assert "direction" not in effect.attrs and "direction" not in transition.attrs
    fades = effect.filters("alpha")
    assert fades[0].number("alphaStart") == 0 and fades[0].number("alphaEnd") == 1
    assert "alphaEnd" not in fades[1].attrs
    text = "\n".join(definition.warnings)
    for word in ("inwards", "diagonal", "-0.3", "1.5", "opaque"):
        assert word in text, text


@pytest.mark.parametrize("start, end", [("-0.3", "0.0"), ("-1e5", "3"), ("0.5", "1")])
def test_grow_reads_any_depth(start, end):
    """growStart/growEnd are depths: negative is further away (the memorylane app sends
    growStart="-0.3" on every photo). Depths at or behind the camera are drawn nearer, with
    a warning, never refused."""
    definition = parse(
        movie(
            f'<overlay duration="3">{IMAGE}'
            f'<animator type="grow" growStart="{start}" growEnd="{end}"/></overlay>'
        )
    )
    behind = [w for w in definition.warnings if "behind the camera" in w]
    assert len(behind) == (1 if end == "3" else 0), definition.warnings


def test_animators_are_kept_on_overlays_texts_and_effects():
    definition = parse(
        movie(
            f'<stack><effect type="none">{IMAGE}<animator type="slide-in"/></effect>'
            '<text>Hi<animator type="custom"><key time="0" rot="10,1,0,0" orient="1,0,0"/>'
            '<key time="1" rot="20,0,1,0"/></animator></text></stack>'
        )
    )
    effect, text = definition.body.children[0].children
    assert [c.tag for c in effect.children] == ["image", "animator"]
    assert text.children[0].children[0].tag == "key"
    warnings = "\n".join(definition.warnings)
    # A turn about x is drawn; a second key about another axis is drawn about the first's.
    assert "another axis" in warnings and "orient" in warnings


def test_ducking_and_sync_attributes_are_read():
    definition = parse(
        movie(
            '<sequence sync="downbeats"><effect type="none"><video filename="http://m.test/v.mp4" '
            'duck-others="0.2" duck-threshold="0.1" duck-margin="0.2" duck-fade="0.5"/></effect>'
            '</sequence><audio filename="http://m.test/a.mp3" duck-others="0.3" loop="true"/>'
        )
    )
    assert [w for w in definition.warnings if "ignored" in w] == []
    assert any("looped track ducks" in w for w in definition.warnings)
    assert any(
        "duck-threshold" in m
        for m in errors_of(
            movie('<audio filename="http://m.test/a.mp3" duck-others="0.3" duck-threshold="2"/>')
        )
    )
    assert any(
        "sync" in m
        for m in errors_of(
            movie(f'<sequence sync="bars"><effect type="none">{IMAGE}</effect></sequence>')
        )
    )


def test_warnings_are_not_repeated():
    definition = parse(
        movie("".join(f'<effect type="none" antialias="4">{IMAGE}</effect>' for _ in range(5)))
    )
    assert len(definition.warnings) == 1


def test_bare_media_is_wrapped_in_an_effect():
    definition = parse(
        movie(
            '<image color="#ff0000" duration="2"/>'
            '<stack><video filename="http://media.test/v.mp4" margin-start="1"/></stack>'
        )
    )
    still, stack = definition.body.children
    assert still.tag == "effect" and still.attrs == {"type": "none", "duration": "2"}
    wrapper = stack.children[0]
    assert wrapper.tag == "effect" and wrapper.attrs["margin-start"] == "1"
    assert "margin-start" not in wrapper.children[0].attrs


def test_encoding_declaration_of_a_decoded_string_is_ignored():
    xml = '<?xml version="1.0" encoding="ISO-8859-1"?>\n' + movie(
        '<text type="zone" duration="1">Café Überraschung</text>'
    )
    text = parse(xml).body.children[0]
    assert text.text == "Café Überraschung"


def test_media_lists_every_url_element():
    definition = parse(
        movie(
            f'<effect type="diving">{IMAGE}{IMAGE}</effect>'
            '<audio filename="http://media.test/a.mp3"/>'
        )
    )
    assert [n.tag for n in definition.media()] == ["image", "image", "audio"]


# -- the director.theme widget dialect ---------------------------------------------------


def test_widget_becomes_a_stack_with_crossfades_and_bound_music():
    definition = parse(
        movie(
            '<widget type="director.theme.classic"><track type="video">'
            '<image filename="http://media.test/1.jpg" duration="3.0">'
            '<track type="caption"><text>Caption</text></track></image>'
            '<text duration="4.0">Title</text>'
            '<image type="map" center="37.20,-93.27" zoom="10.0"/>'
            '<transition type="move" direction="down" duration="1"/>'
            '<video filename="http://media.test/clip.mp4"/>'
            '</track><track type="audio"><audio filename="http://media.test/m.mp3"/></track>'
            "</widget>"
        )
    )
    [stack] = definition.body.children
    sequence, music = stack.children
    tags = [c.tag for c in sequence.children]
    assert tags == ["stack", "transition", "stack", "transition", "effect", "transition", "effect"]
    captioned = sequence.children[0]
    assert captioned.attrs["duration"] == "3.0"
    assert [c.tag for c in captioned.children] == ["effect", "text"]
    assert captioned.children[1].attrs["type"] == "legend"
    assert sequence.children[1].attrs == {
        "type": "crossfade",
        "direction": "left",
        "duration": "0.5",
    }
    assert sequence.children[5].attrs["type"] == "move"  # explicit wins over automatic
    # The map: drawn from the tile server at render (a grey card there without one).
    drawn = sequence.children[4].children[0]
    assert drawn.attrs["type"] == "map" and drawn.attrs["filename"].startswith("map:")
    assert (drawn.attrs["center"], drawn.attrs["zoom"], drawn.attrs["card"]) == (
        "37.20,-93.27",
        "10.0",
        "1",
    )
    assert music.attrs["duration"] == ".." and music.attrs["fadeout"] == "2"


def test_a_widget_map_that_cannot_be_read_is_a_grey_card():
    definition = parse(
        movie(
            '<widget type="director.theme.tiles"><track type="video">'
            '<image type="map" zoom="10"/></track></widget>'
        )
    )
    [stack] = definition.body.children
    [card] = stack.children[0].children
    assert card.children[0].attrs["color"] == "#808080"
    assert any("grey card" in w and "center" in w for w in definition.warnings)


def test_widget_urls_pass_the_gate():
    messages = errors_of(
        movie(
            '<widget type="director.theme.x"><track type="video">'
            '<image filename="ftp://media.test/1.jpg"/></track></widget>'
        )
    )
    assert any("http or https" in m for m in messages)


# -- schema -------------------------------------------------------------------------------


def test_schema_defaults():
    params = Schema().load({"definition": movie(f'<effect type="none">{IMAGE}</effect>')})
    assert params["profile"] == "360p"
    assert params["preview"] is False and params["export"] is True
    assert params["thumbnail_time"] == 1.0 and params["antialias"] == 4


def test_unknown_profile_lists_the_valid_ones():
    with pytest.raises(ValidationError) as info:
        Schema().load(
            {"definition": movie(f'<effect type="none">{IMAGE}</effect>'), "profile": "8k"}
        )
    [message] = info.value.messages["profile"]
    assert "'8k' is not a valid profile" in message
    assert "'360p'" in message and "'720p-29-97-fps'" in message


def test_antialias_choices():
    with pytest.raises(ValidationError):
        Schema().load(
            {"definition": movie(f'<effect type="none">{IMAGE}</effect>'), "antialias": 3}
        )


# -- profiles, placement, text, transitions ----------------------------------------------


def test_profiles():
    assert (profiles.get("360p").width, profiles.get("360p").height) == (640, 360)
    assert profiles.get("720p").video_kbps == 1500
    assert str(profiles.get("720p-29-97-fps").rate) == "30000/1001"
    assert str(profiles.get("360p-12-5-fps").rate) == "25/2"
    assert (profiles.get("480p-4-3-29-97-fps").width, profiles.get("480p-4-3").height) == (640, 480)
    assert profiles.get("mobile-small").rate == 15
    assert profiles.get("iphone-24p").rate == 24
    assert profiles.get("240p").width % 2 == 0
    preview = profiles.get("1080p").preview()
    assert (preview.width, preview.height) == (426, 240)
    # Every name of the historic choice list is accepted.
    for name in (
        "iphone-24p",
        "dvd-pal-16-9",
        "720p-vhq-29-97-fps",
        "360p-23-976-fps",
        "dvd-ntsc-4-3-h",
        "youtube-12-5fps",
        "special",
        "th720p",
        "cine-half-hd",
        "flash-med-16-9",
        "240p-24-fps",
        "1080p-24-fps",
        "square-640",
    ):
        assert profiles.get(name) is not None, name


def test_placement_boxes():
    spec = layout.placement({"height": "0.2", "right": "0", "top": "0"})
    assert layout.place(spec, 640, 360, aspect=2.0) == (496, 0, 144, 72)
    assert layout.place(
        layout.placement({"left": "0.25", "top": "0.25", "width": "0.5", "height": "0.5"}), 640, 360
    ) == (160, 90, 320, 180)
    assert layout.place({}, 640, 360) == (0, 0, 640, 360)
    assert layout.place(
        layout.placement({"width": "0.5", "height": "auto"}), 640, 360, aspect=1.0
    ) == (160, 20, 320, 320)
    assert layout.place(
        layout.placement({"height": "0.15", "right": "0", "bottom": "0"}), 640, 360
    ) == (0, 306, 640, 54)
    assert layout.fit((0, 0, 640, 360), 4 / 3) == (80, 0, 480, 360)


def test_text_clean_keeps_line_breaks():
    assert clean("\n   Hello    big \t world \n  second   line  \n") == (
        "Hello big world\nsecond line"
    )


@pytest.mark.parametrize(
    "attrs, name",
    [
        ({"type": "crossfade"}, "fade"),
        ({"type": "move", "direction": "up"}, "slideup"),
        ({"type": "move"}, "slideleft"),
        ({"type": "scan", "direction": "right"}, "wiperight"),
        ({"type": "circle"}, "circleopen"),
        ({"type": "radial"}, "radial"),
        ({"type": "scans", "direction": "down"}, "vdslice"),
        ({"type": "custom"}, "fade"),
    ],
)
def test_transition_names(attrs, name):
    from dragon.sxml.model import Node

    assert xfade(Node("transition", 1, attrs))[0] == f"transition={name}"


@pytest.mark.parametrize("kind", ["over", "under", "dualmove", "strip", "spiral"])
@pytest.mark.parametrize("direction", ["left", "right", "up", "down"])
def test_drawn_transitions_are_custom_expressions(kind, direction):
    from dragon.sxml.model import Node

    options, _ = xfade(Node("transition", 1, {"type": kind, "direction": direction}))
    assert options.startswith("transition=custom:expr='") and options.count("'") == 2


@pytest.mark.parametrize("direction", ["left", "right", "up", "down"])
def test_cube_waterdrop_and_swirl_are_drawn_in_their_own_ways_not_by_xfade(direction):
    from dragon.sxml.model import Node
    from dragon.sxml.transitions import card_corners, drawn, warp_maps

    for kind in ("cube", "waterdrop", "swirl"):
        options, note = xfade(Node("transition", 1, {"type": kind, "direction": direction}))
        assert drawn(options) == (kind, direction) and note is None
    (outgoing, incoming), nearer_on_top = card_corners("cube", direction, 25, (426, 240), 2)
    assert len(outgoing) == len(incoming) == 8 and nearer_on_top
    assert len(warp_maps("swirl", direction, 25, (426, 240))) == 2  # x, y: then a crossfade
    assert len(warp_maps("waterdrop", direction, 25, (426, 240))) == 3  # and the share


def test_a_very_long_word_wraps_quickly_and_completely():
    from PIL import ImageFont

    from dragon.sxml import text

    font = ImageFont.truetype(text.font_path(""), 24)
    word = "abcdefghij" * 800  # 8,000 characters: cutting one at a time took minutes
    lines = text._wrap(word, font, 300)
    assert "".join(lines) == word
    assert all(font.getlength(line) <= 300 for line in lines)
    assert all(font.getlength(line + "a") > 300 for line in lines[:-1])  # each line is full


def test_spoken_audio_needs_text_and_takes_an_internal_name():
    definition = parse(
        movie(
            f'<stack><effect type="none" duration="3">{IMAGE}</effect>'
            '<audio voice="neospeech:paul">Bonjour</audio>'
            '<audio voice="qq-zz">Hi</audio></stack>'
        )
    )
    spoken = [n for n in definition.media() if n.tag == "audio"]
    assert [n.attrs["filename"] for n in spoken] == ["speech:2", "speech:3"]
    assert [w for w in definition.warnings if "voice" in w] == []  # a language code is read
    assert "no text to speak" in " ".join(errors_of(movie('<audio voice="fr"/>')))
    refused = errors_of(movie('<audio filename="speech:1"/>'))
    assert any("filename" in m for m in refused), refused  # not a URL: no user can name one


def test_voices_map_to_espeak_voices():
    from dragon.sxml import speech

    assert speech.voice("neospeech:julie") == ("en-us+f3", None)
    assert speech.voice("NeoSpeech:Hugh") == ("en-gb+m3", None)
    assert speech.voice("de") == ("de", None)
    chosen, problem = speech.voice("robot voice")
    assert chosen == "en-us+m3" and problem and "English" in problem


def test_director_themes_differ_in_transitions_motion_fonts_and_colours():
    def expanded(theme: str):
        definition = parse(
            movie(
                f'<widget type="director.theme.{theme}"><track type="video">'
                '<image filename="http://media.test/1.jpg"/><text>Title</text>'
                '<image filename="http://media.test/2.jpg"/></track></widget>'
            )
        )
        [sequence] = definition.body.children[0].children
        photo, first, title, second, _ = sequence.children
        ground, text = title.children
        return (
            photo.attrs["type"],
            [first.attrs["type"], second.attrs["type"]],
            ground.children[0].attrs["color"],
            text.attrs["fontcolor"],
            text.attrs["fontname"],
            [f.attrs["type"] for f in photo.kids({"filter"})],
        )

    tiles, vintage = expanded("tiles"), expanded("vintage")
    assert tiles == ("none", ["move", "move"], "#1F3A5F", "#FFFFFF", "arialbold", [])
    assert vintage == (
        "kenburns",
        ["crossfade", "radial"],
        "#3B2A1A",
        "#F1E3C6",
        "timesnewroman",
        ["flashback"],
    )
    # A name we do not know: one of ours, always the same for that name.
    assert expanded("sunset.02") == expanded("sunset.02")
    looks = {repr(expanded(name)) for name in ("a", "b", "c", "d", "e", "f", "g", "h")}
    assert len(looks) > 2


def test_custom_shader_code_in_the_head_is_refused():
    messages = errors_of(
        '<movie service="craftsman-1.0"><head><filtercode name="x">void main() {}'
        "</filtercode></head><body>"
        '<effect type="none"><image filename="http://media.test/a.jpg"/></effect>'
        "</body></movie>"
    )
    assert any("<filtercode>" in m and "untrusted" in m for m in messages), messages


def test_a_camera_animator_that_cannot_be_read_is_left_out_not_refused():
    definition = parse(
        movie(
            f'<stack><effect type="none">{IMAGE}</effect><camera>'
            '<animator type="zoom"/><animator type="slide-in"/></camera></stack>'
        )
    )
    [camera] = definition.body.children[0].kids({"camera"})
    assert [a.attrs["type"] for a in camera.kids({"animator"})] == ["slide-in"]
    assert any("zoom" in w and "ignored" in w for w in definition.warnings)
