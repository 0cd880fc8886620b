"""The soundtrack's filters (dragon.sxml.sound): one clip per audible element, mixed.

Pure: definitions are parsed and timed with made-up file lengths, and the filtergraph
text is compared; nothing is decoded.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

from dragon.media.probe import MediaInfo
from dragon.sxml import sound
from dragon.sxml.filtergraph import Graph
from dragon.sxml.parse import parse
from dragon.sxml.timing import resolve

FORMAT = sound.FORMAT


def info(name: str, duration: float | None, *, has_audio: bool = True) -> MediaInfo:
    return MediaInfo(
        path=Path(f"/in/{name}"),
        demuxer="mov",
        format_name="mov",
        content_type="video/mp4",
        duration=duration,
        width=None,
        height=None,
        frame_rate=None,
        rotation=0.0,
        alpha=False,
        video_codec=None,
        audio_codec="aac",
        sample_rate=44100,
        channels=2,
        has_video=False,
        has_audio=has_audio,
        streams=1,
        bit_rate=None,
    )


def mixed(body_xml: str, media: dict[str, MediaInfo], **kwargs):
    """The graph after mixing ``<body>body_xml</body>`` with files named after ``media``."""
    xml = f'<movie service="craftsman-1.0"><body>{body_xml}</body></movie>'
    body = parse(xml).body
    by_url = {f"http://media.test/{name}": i for name, i in media.items()}
    resolve(body, lambda n: by_url[n.attrs["filename"]].duration, max_duration=600)
    graph = Graph(640, 360, Fraction(25))
    out = sound.mix(graph, body, by_url, **kwargs)
    return graph, out


def media_tag(tag: str, name: str, **attrs: str) -> str:
    extra = "".join(f' {k.replace("_", "-")}="{v}"' for k, v in attrs.items())
    return f'<{tag} filename="http://media.test/{name}"{extra}/>'


STILL = '<effect type="none" duration="4"><image filename="http://media.test/i.jpg"/></effect>'


def test_an_audio_clip_is_seeked_retimed_faded_and_delayed():
    graph, out = mixed(
        "<stack>"
        + STILL
        + media_tag(
            "audio",
            "a",
            duration="..",
            margin_start="1",
            skip="2",
            speed="2.5",
            volume="0.5",
            fadein="1",
            fadeout="0.5",
        )
        + "</stack>",
        {"a": info("a", 30.0)},
    )
    assert graph.inputs == [
        ["-t", "7.600000", "-protocol_whitelist", "file,pipe", "-format_whitelist", "mov"]
        + ["-ss", "2.000000", "-f", "mov", "-i", "/in/a"]
    ]
    assert graph.chains[0] == (
        f"[0:a]asetpts=PTS-STARTPTS,{FORMAT},atempo=2,atempo=1.250000,volume=0.5,"
        "afade=t=in:st=0:d=1.000000,afade=t=out:st=2.500000:d=0.500000,"
        f"atrim=end_sample={3 * 44100},adelay=delays=44100S:all=1[a0]"
    )
    assert graph.chains[-1] == f"[a0]apad=whole_len={4 * 44100},atrim=end_sample={4 * 44100}[a1]"
    assert out == "a1"


def test_a_short_file_is_read_only_to_its_end_and_a_slow_one_slowed_in_steps():
    graph, _ = mixed(
        f"<stack>{STILL}{media_tag('audio', 'a', duration='..', speed='0.2')}</stack>",
        {"a": info("a", 0.5)},
    )
    assert graph.inputs[0][:2] == ["-t", "0.600000"]  # 0.5 s and a margin, not 4 * 0.2
    assert "atempo=0.5,atempo=0.5,atempo=0.800000," in graph.chains[0]


def test_a_looped_track_seeks_within_one_loop_and_reads_what_is_heard():
    graph, _ = mixed(
        f"<stack>{STILL}{media_tag('audio', 'a', loop='true', skip='25')}</stack>",
        {"a": info("a", 10.0)},
    )
    assert graph.inputs[0][:4] == ["-stream_loop", "-1", "-t", "4.100000"]
    assert graph.inputs[0][8:10] == ["-ss", "5.000000"]


def test_silent_and_used_up_sources_make_a_silent_track():
    graph, out = mixed(
        f"<stack>{STILL}{media_tag('audio', 'a', skip='40', duration='..')}"
        f"{media_tag('audio', 'b', duration='..')}</stack>",
        {"a": info("a", 30.0), "b": info("b", 30.0, has_audio=False)},
    )
    assert graph.inputs == []
    assert graph.chains == [f"anullsrc=r=44100:cl=stereo,atrim=end_sample={4 * 44100}[a0]"]
    assert out == "a0"


def test_a_video_with_audio_false_is_not_heard():
    graph, _ = mixed(
        '<effect type="none">' + media_tag("video", "v", audio="false") + "</effect>",
        {"v": info("v", 3.0)},
    )
    assert graph.inputs == []


def test_a_transition_crossfades_the_sound_of_both_items():
    graph, out = mixed(
        f'<effect type="none">{media_tag("video", "v")}</effect>'
        '<transition type="crossfade" duration="1"/>'
        f'<effect type="none">{media_tag("video", "w")}</effect>',
        {"v": info("v", 3.0), "w": info("w", 2.0)},
    )
    first, second = graph.chains[0], graph.chains[1]
    assert first.endswith(f"afade=t=out:st=2.000000:d=1.000000,atrim=end_sample={3 * 44100}[a0]")
    assert second.endswith(
        f"afade=t=in:st=0.000000:d=1.000000,atrim=end_sample={2 * 44100},"
        "adelay=delays=88200S:all=1[a1]"
    )
    assert graph.chains[2] == "[a0][a1]amix=inputs=2:normalize=0:duration=longest[a2]"
    assert out == "a3"


def test_ducking_lowers_the_other_tracks_only():
    spans = [(1.0, 2.0, 0.2, 0.5, 1.0)]
    graph, _ = mixed(
        f"<stack>{STILL}{media_tag('audio', 'voice', duck_others='0.2', duration='..')}"
        f"{media_tag('audio', 'music', duration='..')}</stack>",
        {"voice": info("voice", 30.0), "music": info("music", 30.0)},
        ducked=spans,
    )
    duck = sound.ducking.volume_filter(spans)
    assert duck is not None
    assert not graph.chains[0].endswith(duck + "[a0]")
    assert graph.chains[1].endswith(duck + "[a1]")
