"""video.create end to end: real server, media from the local origin, real ffmpeg renders.

Every render is a few seconds at 240p so the file stays fast. Outputs are checked by
probing (duration within one frame, size per profile, audio present) and by pixels (a
red still is red, a crossfade's middle frame mixes both sides, a legend draws text in the
bottom band, later stack children are drawn on top).
"""

from __future__ import annotations

import io
import json
import math
import subprocess
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dragon.config import SETTINGS
from dragon.tasks.video_create import SIZE_FROM_PROFILE
from tests.support import media

FPS = 25
W, H = 426, 240  # the 240p profile


def movie(body: str) -> str:
    return f'<movie service="craftsman-1.0"><body>{body}</body></movie>'


@pytest.fixture(scope="module")
def urls(origin, tmp_path_factory) -> dict[str, str]:
    tmp = tmp_path_factory.mktemp("sxml")
    out = {
        "red": origin.add(
            "sxml/red.jpg", media.image_bytes(320, 240, (255, 0, 0), quality=95), "image/jpeg"
        ),
        "blue": origin.add(
            "sxml/blue.png", media.image_bytes(320, 240, (0, 0, 255), "PNG"), "image/png"
        ),
        "black": origin.add("sxml/black.png", media.image_bytes(64, 36, (0, 0, 0), "PNG")),
        "logo": origin.add(
            "sxml/logo.png", media.image_bytes(40, 20, (0, 255, 0, 255), "PNG", mode="RGBA")
        ),
    }
    clip = media.video(tmp / "clip.mp4", duration=2.0)
    out["clip"] = origin.add_file("sxml/clip.mp4", clip, "video/mp4")
    music = media.audio(tmp / "music.mp3", duration=6.0)
    out["music"] = origin.add_file("sxml/music.mp3", music, "audio/mpeg")
    return out


def create(server, definition: str, **params) -> dict:
    task = {"task_name": "video.create", "definition": definition, "profile": "240p", **params}
    return server.run_task(task)


def fetch(server, url: str, tmp_path: Path, name: str) -> Path:
    response = server.get(url)
    assert response.status == 200
    path = tmp_path / name
    path.write_bytes(response.body)
    return path


def probe(path: Path) -> dict:
    """ffprobe's streams by type (frames counted), plus ``format``."""
    data = media.ffprobe(path, "-count_frames")
    return {s["codec_type"]: s for s in data["streams"]} | {"format": data["format"]}


def frame(path: Path, index: int) -> np.ndarray:
    """Frame ``index`` of a video as an RGB array (exact: decoded and selected by number)."""
    out = subprocess.run(
        [
            "ffmpeg",
            "-v",
            "error",
            "-i",
            str(path),
            "-vf",
            f"select=eq(n\\,{index})",
            "-frames:v",
            "1",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "rgb24",
            "-",
        ],
        capture_output=True,
        check=True,
    ).stdout
    return np.frombuffer(out, np.uint8).reshape(H, W, 3).astype(int)


def loudness(path: Path, start: float, end: float) -> float:
    """RMS of the mono mix between two times."""
    out = subprocess.run(
        [
            "ffmpeg",
            "-v",
            "error",
            "-i",
            str(path),
            "-vn",
            "-ac",
            "1",
            "-ar",
            "8000",
            "-f",
            "f32le",
            "-",
        ],
        capture_output=True,
        check=True,
    ).stdout
    samples = np.frombuffer(out, np.float32)[int(start * 8000) : int(end * 8000)]
    return float(np.sqrt(np.mean(samples**2))) if samples.size else 0.0


def assert_success(status: dict) -> dict:
    assert status["status"] == "success", status
    return status["result"]


# -- renders -------------------------------------------------------------------------------


def test_red_still_renders_red_at_the_profile_size(dragon_server, urls, tmp_path):
    result = assert_success(
        create(
            dragon_server,
            movie(f'<effect type="none" duration="2"><image filename="{urls["red"]}"/></effect>'),
        )
    )
    assert (result["duration"], result["width"], result["height"]) == (2.0, W, H)
    path = fetch(dragon_server, result["export"], tmp_path, "red.mp4")
    info = probe(path)
    assert (info["video"]["width"], info["video"]["height"]) == (W, H)
    assert info["video"]["codec_name"] == "h264" and info["audio"]["codec_name"] == "aac"
    assert int(info["video"]["nb_read_frames"]) == 2 * FPS
    assert abs(float(info["format"]["duration"]) - 2.0) <= 1 / FPS + 0.03
    r, g, b = frame(path, 25)[H // 2, W // 2]
    assert r > 200 and g < 50 and b < 50
    thumb = Image.open(io.BytesIO(dragon_server.get(result["thumbnail"]).body))
    assert thumb.format == "JPEG" and thumb.size == (W, H)
    assert thumb.convert("RGB").getpixel((W // 2, H // 2))[0] > 200
    assert "preview" not in result


def test_crossfade_mixes_both_sides_and_the_sound(dragon_server, urls, tmp_path):
    result = assert_success(
        create(
            dragon_server,
            movie(
                f"<stack><sequence>"
                f'<effect type="none" duration="2"><image filename="{urls["red"]}"/></effect>'
                f'<transition type="crossfade" duration="1"/>'
                f'<effect type="none" duration="2"><image filename="{urls["blue"]}"/></effect>'
                f'</sequence><audio filename="{urls["music"]}" duration=".." fadeout="1"/></stack>'
            ),
        )
    )
    assert result["duration"] == 3.0
    path = fetch(dragon_server, result["export"], tmp_path, "fade.mp4")
    assert int(probe(path)["video"]["nb_read_frames"]) == 3 * FPS
    before, middle, after = (frame(path, n)[H // 2, W // 2] for n in (20, 37, 55))
    assert before[0] > 200 and before[2] < 50
    assert 90 < middle[0] < 170 and 90 < middle[2] < 170  # half red, half blue
    assert after[2] > 200 and after[0] < 50
    assert loudness(path, 0.2, 1.5) > 0.05  # the bound music plays (a sine at 1/8 scale)...
    assert loudness(path, 2.9, 3.0) < loudness(path, 0.2, 1.5) / 2  # ...and fades out


def test_legend_draws_text_in_the_bottom_band(dragon_server, urls, tmp_path):
    result = assert_success(
        create(
            dragon_server,
            movie(
                f'<stack duration="2"><effect type="none">'
                f'<image filename="{urls["black"]}"/></effect>'
                f'<text type="legend">Hello legend</text></stack>'
            ),
        )
    )
    picture = frame(fetch(dragon_server, result["export"], tmp_path, "legend.mp4"), 25)
    bright = picture.sum(axis=2) > 600
    rows = np.nonzero(bright.any(axis=1))[0]
    columns = np.nonzero(bright.any(axis=0))[0]
    assert rows.size and rows.min() > 0.75 * H and rows.max() < 0.93 * H
    assert abs((columns.min() + columns.max()) / 2 - W / 2) < 0.05 * W  # centred


def test_stack_draws_later_children_on_top(dragon_server, urls, tmp_path):
    result = assert_success(
        create(
            dragon_server,
            movie(
                f'<stack duration="1"><effect type="none">'
                f'<image filename="{urls["red"]}"/></effect>'
                f'<overlay left="0.25" top="0.25" width="0.5" height="0.5">'
                f'<image filename="{urls["blue"]}"/></overlay></stack>'
                f'<stack duration="1"><overlay left="0.25" top="0.25" width="0.5" height="0.5">'
                f'<image filename="{urls["blue"]}"/></overlay>'
                f'<effect type="none"><image filename="{urls["red"]}"/></effect></stack>'
            ),
        )
    )
    path = fetch(dragon_server, result["export"], tmp_path, "stack.mp4")
    first, second = frame(path, 12), frame(path, 37)
    assert first[H // 2, W // 2][2] > 200 and first[H // 2, W // 2][0] < 50  # blue on top
    assert first[5, 5][0] > 200  # red around it
    assert second[H // 2, W // 2][0] > 200 and second[H // 2, W // 2][2] < 50  # red covers


def test_video_with_its_sound_overlay_and_alpha_fade(dragon_server, urls, tmp_path):
    result = assert_success(
        create(
            dragon_server,
            movie(
                f'<stack><effect type="none"><video filename="{urls["clip"]}"/></effect>'
                f'<overlay height="0.25" right="0" top="0"><image filename="{urls["logo"]}"/>'
                f'<filter type="alpha" alphaStart="0" alphaEnd="1" duration="1"/></overlay>'
                f"</stack>"
            ),
        )
    )
    assert result["duration"] == 2.0
    path = fetch(dragon_server, result["export"], tmp_path, "clip.mp4")
    assert int(probe(path)["video"]["nb_read_frames"]) == 2 * FPS
    assert loudness(path, 0.2, 1.8) > 0.05  # the clip's own 440 Hz tone
    # The logo keeps its 2:1 shape, sits in the top-right corner and fades in.
    logo_w, logo_h = round(0.25 * H * 2), round(0.25 * H)
    x, y = W - logo_w // 2, logo_h // 2
    start, end = frame(path, 1)[y, x], frame(path, 40)[y, x]
    assert end[1] > 200 and end[0] < 60 and end[2] < 60  # green logo
    assert start[2] > end[2] + 150  # still nearly transparent: testsrc2's cyan shows


def test_preview_is_published_before_the_export(dragon_server, urls, tmp_path):
    definition = movie(
        f'<effect type="kenburns" duration="3"><image filename="{urls["red"]}"/></effect>'
    )
    response = dragon_server.request(
        "POST",
        "/v2/create_stream",
        {
            "tasks": [
                {
                    "task_name": "video.create",
                    "definition": definition,
                    "profile": "360p",
                    "preview": True,
                }
            ]
        },
    )
    lines = [line for line in response.lines()[1:] if isinstance(line, dict)]
    partials = [d for d in lines if d["status"] == "executing" and d.get("result")]
    assert partials, lines
    assert set(partials[0]["result"]) == {"duration", "preview"}
    assert partials[0]["result"]["duration"] == 3.0
    final = lines[-1]
    assert final["status"] == "success"
    assert final["result"]["preview"] == partials[0]["result"]["preview"]
    preview = probe(fetch(dragon_server, final["result"]["preview"], tmp_path, "p.mp4"))
    export = probe(fetch(dragon_server, final["result"]["export"], tmp_path, "e.mp4"))
    assert (preview["video"]["width"], preview["video"]["height"]) == (W, H)
    assert (export["video"]["width"], export["video"]["height"]) == (640, 360)


def test_director_theme_widget_renders(dragon_server, urls, tmp_path):
    result = assert_success(
        create(
            dragon_server,
            movie(
                f'<widget type="director.theme.tiles"><track type="video">'
                f'<image filename="{urls["red"]}" duration="1.5">'
                f'<track type="caption"><text>Caption for this image</text></track></image>'
                f'<text duration="1.5">A title card</text>'
                f'<image type="map" center="37.20,-93.27" zoom="10.0" duration="1"/>'
                f'<video filename="{urls["clip"]}"/></track>'
                f'<track type="audio"><audio filename="{urls["music"]}"/></track></widget>'
            ),
            thumbnail_time=100,
        )
    )
    # tiles: 0.6 s moves between items, those beside the 1 s map shortened to fit it.
    assert result["duration"] == pytest.approx(1.5 + 1.5 + 1 + 2 - 1.6)
    assert any("map" in w for w in result["warnings"])
    path = fetch(dragon_server, result["export"], tmp_path, "widget.mp4")
    first = frame(path, 10)
    assert first[H // 3, W // 2][0] > 180  # the red still...
    band = first[int(0.8 * H) : int(0.92 * H), W // 4 : 3 * W // 4]
    assert (band.sum(axis=2) > 600).any()  # ...with its caption
    assert loudness(path, 0.5, 3.0) > 0.05
    thumb = Image.open(io.BytesIO(dragon_server.get(result["thumbnail"]).body))
    assert thumb.size == (W, H)  # a time past the end is clamped to the last frame


def test_thumbnail_only_when_nothing_else_is_asked(dragon_server, urls, tmp_path):
    result = assert_success(
        create(
            dragon_server,
            movie(f'<effect type="none" duration="1"><image filename="{urls["blue"]}"/></effect>'),
            export=False,
            thumbnail_time=0.5,
        )
    )
    assert "export" not in result and "preview" not in result
    thumb = Image.open(io.BytesIO(dragon_server.get(result["thumbnail"]).body)).convert("RGB")
    assert thumb.size == (W, H) and thumb.getpixel((W // 2, H // 2))[2] > 200


def test_a_movie_cut_into_windows_is_seamless(make_server, urls, tmp_path):
    """With a tiny memory budget each still gets its own ffmpeg run; the joined movie must
    look and sound the same as one run would make it."""
    if "video_create_memory_bytes" not in {s.name for s in SETTINGS}:
        pytest.skip("needs the video_create_memory_bytes setting (dragon.config)")
    server = make_server(env={"DRAGON_VIDEO_CREATE_MEMORY_BYTES": "1000000"})
    stills = [
        f'<effect type="kenburns" duration="1"><image filename="{urls[c]}"/></effect>'
        for c in ("red", "blue", "red", "blue")
    ]
    result = assert_success(
        create(
            server,
            movie(
                "<stack><sequence>"
                + '<transition type="crossfade" duration="0.4"/>'.join(stills)
                + f'<effect type="none"><video filename="{urls["clip"]}"/></effect></sequence>'
                f'<text type="legend">Windows</text>'
                f'<audio filename="{urls["music"]}" duration=".."/></stack>'
            ),
            thumbnail_time=1.1,
        )
    )
    assert result["duration"] == pytest.approx(4 - 3 * 0.4 + 2)
    path = fetch(server, result["export"], tmp_path, "windows.mp4")
    info = probe(path)
    assert int(info["video"]["nb_read_frames"]) == round(result["duration"] * FPS)
    assert abs(float(info["audio"]["duration"]) - result["duration"]) < 0.05
    colours = [frame(path, round(t * FPS))[H // 3, W // 2] for t in (0.3, 1.1, 1.7, 2.5)]
    assert [int(np.argmax(c)) for c in colours] == [0, 2, 0, 2]  # red, blue, red, blue
    middle = frame(path, round(0.8 * FPS))[H // 3, W // 2]  # inside the first crossfade
    assert 60 < middle[0] < 200 and 60 < middle[2] < 200
    assert loudness(path, 0.1, result["duration"] - 0.1) > 0.05
    thumb = Image.open(io.BytesIO(server.get(result["thumbnail"]).body)).convert("RGB")
    assert thumb.getpixel((W // 2, H // 3))[2] > 150  # 1.1 s: the first blue still


def pattern(base: tuple[int, int, int], stripe: tuple[int, int, int], vertical: bool) -> bytes:
    """A picture with stripes, so that moving or twisting it changes its pixels."""
    picture = np.zeros((240, 320, 3), np.uint8)
    picture[:] = base
    if vertical:
        picture[:, (np.arange(320) // 20) % 2 == 1] = stripe
    else:
        picture[(np.arange(240) // 20) % 2 == 1, :] = stripe
    out = io.BytesIO()
    Image.fromarray(picture).save(out, "PNG")
    return out.getvalue()


DRAWN = [
    "over",
    "under",
    "cube",
    "dualmove",
    "strip",
    "waterdrop",
    "swirl",
    "spiral",
    "scans",
    "circle",
    "radial",
    "move",
    "scan",
]


def test_transitions_are_drawn_as_named(dragon_server, origin, tmp_path):
    """Every transition's middle frame differs from a crossfade's between the same two
    pictures (at its middle any crossfade is half of each, whichever comes first)."""
    first = origin.add(
        "sxml/stripes-a.png", pattern((255, 0, 0), (255, 255, 255), True), "image/png"
    )
    second = origin.add(
        "sxml/stripes-b.png", pattern((0, 0, 255), (255, 255, 0), False), "image/png"
    )
    items = [
        f'<effect type="none" duration="1"><image filename="{(first, second)[i % 2]}"/></effect>'
        for i in range(len(DRAWN) + 2)
    ]
    kinds = ["crossfade", *DRAWN]
    directions = ("left", "up", "right", "down")
    body = items[0] + "".join(
        f'<transition type="{kind}" direction="{directions[i % 4]}" duration="0.4"/>{item}'
        for i, (kind, item) in enumerate(zip(kinds, items[1:], strict=True))
    )
    result = assert_success(create(dragon_server, movie(body)))
    assert result["duration"] == pytest.approx(len(items) - 0.4 * len(kinds))
    assert not [w for w in result.get("warnings", []) if "as a crossfade" in w], result
    path = fetch(dragon_server, result["export"], tmp_path, "transitions.mp4")
    middles = [frame(path, 15 * (k + 1) + 5) for k in range(len(kinds))]
    crossfade = middles[0]
    ends = frame(path, 10), frame(path, 25)  # both pictures whole, for scale
    assert np.abs(crossfade - (ends[0] + ends[1]) / 2).mean() < 12  # it is a crossfade
    for kind, middle in zip(DRAWN, middles[1:], strict=True):
        assert np.abs(middle - crossfade).mean() > 20, kind


def box_of(picture: np.ndarray, colour: int) -> tuple[int, int, int, int] | None:
    """(x, y, w, h) of the pixels where channel ``colour`` dominates."""
    others = [c for c in range(3) if c != colour]
    mask = (picture[:, :, colour] > 150) & (picture[:, :, others].max(axis=2) < 100)
    rows, columns = np.nonzero(mask.any(axis=1))[0], np.nonzero(mask.any(axis=0))[0]
    if not rows.size:
        return None
    return columns.min(), rows.min(), columns.max() + 1 - columns.min(), rows.max() + 1 - rows.min()


def test_animators_move_overlays_during_their_window_only(dragon_server, tmp_path):
    from dragon.sxml import camera, layout

    result = assert_success(
        create(
            dragon_server,
            movie(
                '<stack duration="3"><effect type="none"><image color="#000000"/></effect>'
                '<overlay left="0.1" top="0.1" width="0.2" height="0.2"><image color="#0000ff"/>'
                '<animator type="slide-in" direction="right" margin-start="0.5" duration="1"/>'
                "</overlay>"
                '<overlay left="0.6" top="0.5" width="0.2" height="0.3"><image color="#00ff00"/>'
                f'<animator type="grow" growStart="{-camera.DISTANCE}" growEnd="0" margin-start="1"'
                ' duration="1"/>'
                "</overlay>"
                '<overlay left="0.4" top="0.6" width="0.1" height="0.1"><image color="#ff0000"/>'
                '<animator type="custom" margin-start="1"><key time="0" pos="0,0,0"/>'
                '<key time="1" pos="0.5,0.5,0"/></animator></overlay></stack>'
            ),
        )
    )
    assert not result.get("warnings"), result
    path = fetch(dragon_server, result["export"], tmp_path, "animators.mp4")
    blue = layout.place(
        layout.placement({"left": "0.1", "top": "0.1", "width": "0.2", "height": "0.2"}), W, H
    )
    green = layout.place(
        layout.placement({"left": "0.6", "top": "0.5", "width": "0.2", "height": "0.3"}), W, H
    )
    red = layout.place(
        layout.placement({"left": "0.4", "top": "0.6", "width": "0.1", "height": "0.1"}), W, H
    )

    def near(found, expected, slack=3):
        x, y, w, h = expected  # the part inside the frame
        expected = (max(0, x), max(0, y), min(x + w, W) - max(0, x), min(y + h, H) - max(0, y))
        assert found is not None and all(
            abs(a - b) <= slack for a, b in zip(found, expected, strict=True)
        ), (found, expected)

    before, during, after = frame(path, 6), frame(path, 25), frame(path, 60)
    assert box_of(before, 2) is None  # not on screen yet: it slides in at 0.5 s
    x, y, w, h = blue
    progress = (25 - 13) / (38 - 13)  # frames 13 to 38 are its window
    near(box_of(during, 2), (round(x - (x + w) * (1 - progress)), y, w, h))
    near(box_of(after, 2), blue)
    x, y, w, h = green  # half size about its centre until 1 s, whole after 2 s
    # z from twice the camera's distance (half size) to 0: perspective also pulls the centre
    # halfway towards the frame's centre until 1 s.
    cx, cy = (x + w / 2 - W / 2) / 2 + W / 2, (y + h / 2 - H / 2) / 2 + H / 2
    near(box_of(before, 1), (round(cx - w / 4), round(cy - h / 4), w // 2, h // 2), slack=4)
    near(box_of(after, 1), green)
    x, y, w, h = red  # half a unit (a quarter of the height) right and up, after 2 s
    near(box_of(before, 0), red)
    near(box_of(after, 0), (x + H // 4, y - H // 4, w, h))


def level_at(path: Path, frequency: float, start: float, end: float) -> float:
    """The magnitude of one frequency in the mono mix between two times."""
    out = subprocess.run(
        [
            "ffmpeg",
            "-v",
            "error",
            "-i",
            str(path),
            "-vn",
            "-ac",
            "1",
            "-ar",
            "8000",
            "-f",
            "f32le",
            "-",
        ],
        capture_output=True,
        check=True,
    ).stdout
    samples = np.frombuffer(out, np.float32)[int(start * 8000) : int(end * 8000)]
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(samples.size)))
    return float(spectrum[np.argmin(np.abs(np.fft.rfftfreq(samples.size, 1 / 8000) - frequency))])


def test_a_voice_ducks_the_music_while_it_sounds(dragon_server, urls, origin, tmp_path):
    voice = origin.add_file(
        "sxml/voice.wav", media.audio(tmp_path / "voice.wav", duration=1.5, freq=1000), "audio/wav"
    )
    result = assert_success(
        create(
            dragon_server,
            movie(
                '<stack duration="6"><effect type="none"><image color="#000000"/></effect>'
                f'<audio filename="{urls["music"]}"/>'
                f'<audio filename="{voice}" margin-start="2" duration="1.5" duck-others="0.1"/>'
                "</stack>"
            ),
        )
    )
    assert not result.get("warnings"), result
    path = fetch(dragon_server, result["export"], tmp_path, "ducked.mp4")
    # Windows of 0.3 s each (the magnitudes grow with the window).
    music = level_at(path, 440, 0.1, 0.4)  # the voice starts at 2 s: ducked from 0.5 s
    assert music > 10
    assert level_at(path, 1000, 2.5, 2.8) > 0.5 * music  # the voice is not ducked...
    assert level_at(path, 440, 2.5, 2.8) < 0.15 * music  # ...the music is, to a tenth
    assert level_at(path, 440, 1.0, 1.3) < 0.8 * music  # going down over 1 s before...
    assert level_at(path, 440, 5.5, 5.8) > 0.8 * music  # ...and back 1.5 s after it ends


@pytest.fixture(scope="module")
def drums(origin, tmp_path_factory) -> tuple[str, np.ndarray, np.ndarray]:
    """A 120 BPM click track in 4/4 (beats every 0.5 s from 0.5 s), its beats, downbeats."""
    import soundfile

    from tests.support.beats import SR, drum_track

    samples, grid, downbeats = drum_track(120, 4, 12.0)
    path = tmp_path_factory.mktemp("drums") / "drums.wav"
    soundfile.write(str(path), samples, SR, subtype="PCM_16")
    return origin.add_file("sxml/drums.wav", path, "audio/wav"), grid, downbeats


def centre_colours(path: Path) -> np.ndarray:
    """The centre pixel of every frame."""
    out = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(path), "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
        capture_output=True,
        check=True,
    ).stdout
    return np.frombuffer(out, np.uint8).reshape(-1, H, W, 3)[:, H // 2, W // 2].astype(int)


def test_sequence_cuts_land_on_the_beats(dragon_server, drums, tmp_path):
    url, grid, _ = drums
    colours = ["#ff0000", "#0000ff", "#00ff00", "#ffffff", "#ff00ff"]
    lengths = [1.3, 0.9, 1.7, 1.1, 2.2]  # cuts at 1.3, 2.2, 3.9, 5.0, end 7.2 unsynced
    items = "".join(
        f'<effect type="none" duration="{d}"><image color="{c}"/></effect>'
        for c, d in zip(colours, lengths, strict=True)
    )
    result = assert_success(
        create(
            dragon_server,
            movie(
                f'<stack><sequence sync="beats">{items}</sequence>'
                f'<audio filename="{url}" duration=".."/></stack>'
            ),
        )
    )
    assert abs(result["duration"] - 7.0) <= 1 / FPS  # the end snaps too
    pixels = centre_colours(fetch(dragon_server, result["export"], tmp_path, "beats.mp4"))
    cuts = [i / FPS for i in range(1, len(pixels)) if np.abs(pixels[i] - pixels[i - 1]).sum() > 200]
    assert len(cuts) == 4  # every item is still there, in order
    for cut in cuts:
        assert np.min(np.abs(grid - cut)) <= 1 / FPS, (cut, cuts)
    assert [int(np.argmax(pixels[round(c * FPS)])) for c in cuts] == [2, 1, 0, 0]


def test_director_widget_cuts_on_downbeats(dragon_server, urls, drums, tmp_path):
    url, _, downbeats = drums
    stills = "".join(
        f'<image filename="{urls[c]}" duration="{d}"/>'
        for c, d in (("red", 2.6), ("blue", 2.2), ("red", 2.4))
    )
    result = assert_success(
        create(
            dragon_server,
            movie(
                f'<widget type="director.theme.tiles" sync="downbeats"><track type="video">{stills}'
                f'</track><track type="audio"><audio filename="{url}"/></track></widget>'
            ),
        )
    )
    assert abs(result["duration"] - 6.5) <= 1 / FPS
    pixels = centre_colours(fetch(dragon_server, result["export"], tmp_path, "down.mp4"))
    bluer = pixels[:, 2] > pixels[:, 0]
    # The middle of each 0.5 s crossfade, where blue overtakes red or red blue again.
    middles = [i / FPS for i in range(1, len(bluer)) if bluer[i] != bluer[i - 1]]
    assert len(middles) == 2
    for middle in middles:
        assert np.min(np.abs(downbeats - middle)) <= 1.5 / FPS, (middle, middles)


# -- refusals --------------------------------------------------------------------------------

# Each would be a valid movie but for its hostile part, so only that part can fail it.
VALID_BODY = '<body><effect type="none"><image color="#ff0000" duration="1"/></effect></body>'
HOSTILE = {
    "billion laughs": (
        '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
        '<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">'
        '<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">'
        f']><movie service="craftsman-1.0">{VALID_BODY}&lol3;</movie>',
        "DTD",
    ),
    "external entity": (
        '<!DOCTYPE m [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        f'<movie service="craftsman-1.0">{VALID_BODY}&x;</movie>',
        "DTD",
    ),
    "doctype": (f'<!DOCTYPE movie><movie service="craftsman-1.0">{VALID_BODY}</movie>', "DTD"),
    "depth 10000": (
        '<movie service="craftsman-1.0"><body>'
        + "<stack>" * 10_000
        + "</stack>" * 10_000
        + "</body></movie>",
        "deeper",
    ),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_definitions_end_as_parameter_errors(dragon_server, name):
    started = time.monotonic()
    definition, reason = HOSTILE[name]
    status = create(dragon_server, definition)
    assert time.monotonic() - started < 30  # refused while parsing, never rendered
    events = {k: datetime.fromisoformat(v) for k, v in status["events"].items()}
    assert (events["completed"] - events["queued"]).total_seconds() < 20
    assert status["status"] == "error"
    assert list(status["error"]["parameters"]) == ["definition"]
    assert reason in status["error"]["parameters"]["definition"][0]
    assert (
        create(dragon_server, f'<movie service="craftsman-1.0">{VALID_BODY}</movie>')["status"]
        == "success"
    )  # the same movie without the hostile part renders


def test_unrenderable_structure_names_element_and_line(dragon_server, urls, origin):
    hits = len(origin.hits)
    status = create(
        dragon_server,
        movie(f'<effect type="none"><image filename="{urls["red"]}"/></effect>\n<sphere/>'),
    )
    [message] = status["error"]["parameters"]["definition"]
    assert "<sphere>" in message and "(line 2)" in message
    assert len(origin.hits) == hits  # refused before any download


def test_forbidden_media_url_is_a_parameter_error(dragon_server):
    status = create(
        dragon_server,
        movie('<effect type="none">\n<image filename="file:///etc/passwd"/></effect>'),
    )
    [message] = status["error"]["parameters"]["definition"]
    assert "<image>" in message and "http or https" in message and "(line 2)" in message


def test_unknown_profile_lists_the_valid_ones(dragon_server):
    status = create(dragon_server, movie('<image color="#ff0000"/>'), profile="4k")
    [message] = status["error"]["parameters"]["profile"]
    assert "'4k' is not a valid profile" in message and "'720p'" in message


def test_a_size_given_as_parameters_is_accepted_with_a_warning(dragon_server):
    result = assert_success(
        create(
            dragon_server,
            movie('<effect type="none" duration="1"><image color="#00ff00"/></effect>'),
            width=1280,
            height=720,
            prfile="720p",
        )
    )
    assert (result["width"], result["height"]) == (426, 240)  # the profile's, 240p
    ignored = [w for w in result["warnings"] if "was ignored" in w]
    assert ignored == [
        "parameter 'width' was ignored: " + SIZE_FROM_PROFILE,
        "parameter 'height' was ignored: " + SIZE_FROM_PROFILE,
        "parameter 'prfile' was ignored: did you mean 'profile'?",
    ]


def test_too_long_a_movie_is_refused(dragon_server):
    status = create(
        dragon_server, movie('<effect type="none" duration="700"><image color="#ff0000"/></effect>')
    )
    [message] = status["error"]["parameters"]["definition"]
    assert "700.0 s" in message and "600 s" in message


def test_media_that_is_not_what_it_claims(dragon_server, urls):
    status = create(
        dragon_server, movie(f'<effect type="none">\n<video filename="{urls["red"]}"/></effect>')
    )
    assert status["status"] == "error"
    assert status["error_code"] == "unsupported_media"
    assert "<video> (line 2)" in status["error"]


def test_more_images_than_frames_render_at_full_length(dragon_server, tmp_path):
    greys = "".join(f'<image color="#{i:02x}{i:02x}{i:02x}"/>' for i in range(0, 200, 2))
    result = assert_success(
        create(dragon_server, movie(f'<effect type="diving" duration="2">{greys}</effect>'))
    )
    path = fetch(dragon_server, result["export"], tmp_path, "diving.mp4")
    assert int(probe(path)["video"]["nb_read_frames"]) == 2 * FPS  # 100 images, 50 frames
    levels = [int(frame(path, n)[H // 2, W // 2][0]) for n in (2, 25, 47)]
    assert levels[0] < 20 and 80 < levels[1] < 120 and levels[2] > 170  # in order


def test_client_definition_ending_with_a_transition_renders(dragon_server, urls, tmp_path):
    """The shape a public Python client of the original service sends: every item, the
    last one too, followed by a 0.1 s crossfade, inside a director theme."""
    items = "".join(
        f"<text duration='0.1'>{date}</text><transition type='crossfade' duration='0.1'/>"
        f"<image filename='{urls[colour]}' duration='1.5'><track type='caption'>"
        f"<text>{headline}</text></track></image>"
        f"<transition type='crossfade' duration='0.1'/>"
        for date, colour, headline in (("May 1", "red", "First"), ("May 2", "blue", "Next"))
    )
    result = assert_success(
        create(
            dragon_server,
            (
                "<movie service='craftsman-1.0'><body><widget type='director.theme.tiles'>"
                f"<track type='video'>{items}</track><track type='audio'>"
                f"<audio filename='{urls['music']}'/></track></widget></body></movie>"
            ),
        )
    )
    assert any("nothing after it" in w for w in result["warnings"])
    # The crossfade after the second date would overlap the one before it: it gets 0 s.
    assert result["duration"] == pytest.approx(2 * (0.1 + 1.5) - 2 * 0.1)
    path = fetch(dragon_server, result["export"], tmp_path, "client.mp4")
    assert int(probe(path)["video"]["nb_read_frames"]) == round(result["duration"] * FPS)
    assert frame(path, 20)[H // 3, W // 2][0] > 180  # the red picture
    assert frame(path, 60)[H // 3, W // 2][2] > 180  # the blue one


# -- real clients ----------------------------------------------------------------------------


def _memorylane_photo(url: str) -> str:
    """A photo as the memorylane Android app writes it (``PhotoAssetDto.getSxml``)."""
    return (
        '<overlay duration="3.0">\n'
        f'   <image filename="{url}">\n'
        '       <filter type="fitAdapter"></filter>\n'
        "   </image>\n"
        '   <animator type="grow" growStart="-0.3" growEnd="0.0"/>'
        "</overlay>\n"
    )


def _memorylane_video(url: str) -> str:
    return (
        "<overlay>\n"
        f'   <video filename="{url}">\n'
        '       <filter type="fitAdapter"></filter>\n'
        "   </video>\n"
        "</overlay>\n"
    )


def _memorylane_double_video(url: str, small: str) -> str:
    return (
        "<stack>\n"
        f"{_memorylane_video(url)}"
        '   <overlay left="0" top="0" height="0.35">\n'
        f'       <video filename="{small}">\n'
        '           <filter type="fitAdapter"></filter>\n'
        "       </video>\n"
        "   </overlay> \n"
        "</stack>\n"
    )


def test_memorylane_movies_render_with_the_photos_coming_closer(dragon_server, urls, tmp_path):
    """The memorylane app (abertschi/memory-lane) posts this request as it is: the secret in
    the body, ``block``, and a sequence of a title, photos that each move from z = -0.3 to
    z = 0, videos and a picture-in-picture. Its growStart="-0.3" was once refused; it is a
    depth, so each photo starts smaller and reaches its fitted size at the end of its 3 s."""
    from dragon.sxml import camera

    assets = [
        _memorylane_photo(urls["red"]),
        _memorylane_photo(urls["blue"]),
        _memorylane_video(urls["clip"]),
        _memorylane_double_video(urls["clip"], urls["clip"]),
        _memorylane_photo(urls["blue"]),
    ]
    definition = (
        '<movie service="craftsman-1.0">\n  <body>\n    <sequence>\n'
        '<text type="zone">HackZurich 2016 &amp; friends</text>'
        + "".join(assets)
        + "    </sequence>\n  </body>\n</movie>"
    )
    r = dragon_server.request(
        "POST",
        "/v2/create",
        {
            "secret": dragon_server.secret,
            "block": True,
            "tasks": [{"definition": definition, "task_name": "video.create"}],
        },
        auth=False,
    )
    assert r.status == 200, r.body
    (status,) = r.json()
    result = assert_success(status)
    assert not [w for w in result.get("warnings", []) if "grow" in w], result
    path = fetch(dragon_server, result["export"], tmp_path, "memorylane.mp4")
    width, height = 160, 90
    raw = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(path), "-vf", f"scale={width}:{height}"]
        + ["-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
        capture_output=True,
        check=True,
    ).stdout
    frames = np.frombuffer(raw, np.uint8).reshape(-1, height, width, 3).astype(int)
    boxes = [box_of(f, 0) for f in frames]
    red = [i for i, b in enumerate(boxes) if b is not None]
    assert red, "the red photo never shows"
    first = red[0]
    run = [i for i in red if i < first + 3 * FPS]  # the photo's 3 s, before the videos
    assert len(run) >= 3 * FPS - 2, run
    start, end = boxes[run[1]], boxes[run[-2]]
    assert start is not None and end is not None
    assert end[3] >= height - 2  # fitted: the 4:3 photo fills the height at z = 0
    assert start[3] / end[3] == pytest.approx(camera.depth_scale(-0.3), abs=0.03)
    assert start[2] < end[2]


@pytest.mark.parametrize("voice", ["neospeech:julie", "fr", "klingon"])
def test_a_voice_track_speaks_its_text_where_it_is_placed(dragon_server, tmp_path, voice):
    """``<audio voice="...">text</audio>`` (the original service's text to speech) is read
    by espeak-ng: audible after its margin, silent before; an unknown voice reads in
    English, with a warning."""
    result = assert_success(
        create(
            dragon_server,
            movie(
                '<stack><effect type="none" duration="6"><image color="#000000"/></effect>'
                f'<audio voice="{voice}" margin-start="1.5">Hello from dragon, the movie'
                " maker.</audio></stack>"
            ),
        )
    )
    assert result["duration"] == pytest.approx(6.0)  # the speech ends before the picture
    warned = [w for w in result.get("warnings", []) if "voice" in w]
    assert bool(warned) == (voice == "klingon"), result
    path = fetch(dragon_server, result["export"], tmp_path, "voice.mp4")
    assert loudness(path, 0.1, 1.3) < 0.001  # nothing before the voice starts
    assert loudness(path, 1.6, 3.0) > 0.02  # speech


def test_subtitles_are_burned_into_the_export_at_their_times(dragon_server, origin, tmp_path):
    cues = "1\n00:00:01,000 --> 00:00:02,000\nHELLO WORLD\n"
    url = origin.add("sxml/cues.srt", cues.encode(), "application/x-subrip")
    result = assert_success(
        create(
            dragon_server,
            movie('<effect type="none" duration="3"><image color="#000000"/></effect>'),
            subtitles=url,
        )
    )
    path = fetch(dragon_server, result["export"], tmp_path, "captions.mp4")
    assert probe(path)["video"]["nb_read_frames"] == "75"  # the length is kept
    band = slice(H * 2 // 3, None)  # captions sit at the bottom
    lit = [(frame(path, n)[band].min(axis=2) > 200).sum() for n in (12, 37, 62)]
    assert lit[0] == 0 and lit[1] > 30 and lit[2] == 0, lit


def test_director_themes_draw_their_title_cards_in_their_colours(dragon_server, tmp_path):
    """The same widget in two themes: the title card's background is each theme's."""
    from dragon.sxml import themes

    for name in ("tiles", "vintage"):
        result = assert_success(
            create(
                dragon_server,
                movie(
                    f'<widget type="director.theme.{name}"><track type="video">'
                    '<text duration="1">A title card</text></track></widget>'
                ),
            )
        )
        picture = frame(fetch(dragon_server, result["export"], tmp_path, f"{name}.mp4"), 12)
        corner = picture[: H // 6, : W // 6].reshape(-1, 3).mean(axis=0)
        wanted = themes.THEMES[name].title_background.lstrip("#")
        expected = [int(wanted[i : i + 2], 16) for i in (0, 2, 4)]
        assert np.abs(corner - expected).max() < 20, (name, corner, expected)


# -- look filters ----------------------------------------------------------------------------


def checker_png(size: int = 8) -> bytes:
    """A black and white checkerboard of ``size`` px squares, 320x240: high frequencies."""
    board = (np.indices((240, 320)) // size).sum(axis=0) % 2 * 255
    buf = io.BytesIO()
    Image.fromarray(board.astype(np.uint8)).convert("RGB").save(buf, "PNG")
    return buf.getvalue()


def stripes_png() -> bytes:
    """Stripes across (changing along x) on the left half, down (along y) on the right."""
    y, x = np.indices((240, 320))
    board = np.where(x < 160, (x // 8) % 2, (y // 8) % 2) * 255
    buf = io.BytesIO()
    Image.fromarray(board.astype(np.uint8)).convert("RGB").save(buf, "PNG")
    return buf.getvalue()


def test_a_turn_about_the_vertical_axis_draws_a_trapezoid(dragon_server, tmp_path):
    """A square overlay turned 60 degrees about the y axis: narrower, its left edge (nearer)
    taller than its right edge (further), centred where it was."""
    result = assert_success(
        create(
            dragon_server,
            movie(
                '<stack duration="1"><effect type="none"><image color="#000000"/></effect>'
                '<overlay left="0.35" top="0.25" width="0.3" height="0.5">'
                '<image color="#00ff00"/><animator type="custom">'
                '<key time="0" rot="60,0,1,0"/></animator></overlay></stack>'
            ),
        )
    )
    assert not result.get("warnings"), result
    picture = frame(fetch(dragon_server, result["export"], tmp_path, "turned.mp4"), 12)
    green = (picture[..., 1] > 150) & (picture[..., 0] < 100) & (picture[..., 2] < 100)
    columns = np.nonzero(green.any(axis=0))[0]
    assert columns.size
    left, right = columns.min(), columns.max()
    heights = green.sum(axis=0)
    assert right - left < 0.75 * 0.3 * W  # narrower: about cos(60) of its width
    assert heights[left + 2] > 1.15 * heights[right - 2]  # the near edge is the taller
    assert abs((left + right) / 2 - W / 2) < 0.08 * W


def effect_frames(server, urls, tmp_path, kind: str, *indices: int) -> list[np.ndarray]:
    """Frames ``indices`` of a 2 s movie of the red picture in an effect ``kind``, which
    must be drawn (no warning names it)."""
    definition = movie(
        f'<effect type="{kind}" duration="2"><image filename="{urls["red"]}"/></effect>'
    )
    result = assert_success(create(server, definition))
    assert not [w for w in result.get("warnings", []) if kind in w], result
    path = fetch(server, result["export"], tmp_path, f"{kind}.mp4")
    return [frame(path, i) for i in indices]


def red_mask(picture: np.ndarray) -> np.ndarray:
    return (picture[..., 0] > 150) & (picture[..., 1] < 100)


def test_a_panel_turns_in_depth(dragon_server, urls, tmp_path):
    """effect type="panel": its picture turns about the vertical axis, the left edge
    nearer (taller) at the start, the right edge at the end, black showing around it."""

    def edges(picture: np.ndarray) -> tuple[int, int]:
        columns = np.nonzero(red_mask(picture).any(axis=0))[0]
        heights = red_mask(picture).sum(axis=0)
        return heights[columns.min() + 3], heights[columns.max() - 3]

    first, last = effect_frames(dragon_server, urls, tmp_path, "panel", 2, 2 * FPS - 3)
    start, end = edges(first), edges(last)
    assert start[0] > 1.05 * start[1] and end[1] > 1.05 * end[0], (start, end)


def test_a_moving_camera_moves_the_stack_the_other_way(dragon_server, tmp_path):
    """A camera sliding half a unit right over the first second: the stack's picture goes
    half a unit (a quarter of the frame height) left."""
    from dragon.sxml import layout

    result = assert_success(
        create(
            dragon_server,
            movie(
                '<stack duration="2"><effect type="none"><image color="#000000"/></effect>'
                '<overlay left="0.4" top="0.4" width="0.2" height="0.2">'
                '<image color="#0000ff"/></overlay>'
                '<camera><animator type="custom" duration="1"><key time="0" pos="0,0,0"/>'
                '<key time="1" pos="0.5,0,0"/></animator></camera></stack>'
            ),
        )
    )
    assert not result.get("warnings"), result
    path = fetch(dragon_server, result["export"], tmp_path, "camera.mp4")
    x, y, w, h = layout.place(
        layout.placement({"left": "0.4", "top": "0.4", "width": "0.2", "height": "0.2"}), W, H
    )
    start, end = box_of(frame(path, 0), 2), box_of(frame(path, 40), 2)
    assert start is not None and end is not None
    assert abs(start[0] - x) <= 3  # as placed before the camera moves
    assert abs(end[0] - (x - H // 4)) <= 3 and abs(end[1] - y) <= 3  # then left


def test_a_slice_effect_brings_its_picture_in_slices(dragon_server, urls, tmp_path):
    """effect type="slice": early on, some vertical slices of the picture are still on
    their way (black where they will be), in turn from above and below; then it is whole."""
    # At 0.76 s two slices are still coming.
    early, late = effect_frames(dragon_server, urls, tmp_path, "slice", 19, 2 * FPS - 3)
    columns = red_mask(early).mean(axis=0)  # how much of each column is red
    assert columns.max() > 0.95 and columns.min() < 0.6  # some slices in, some on their way
    top, bottom = red_mask(early)[: H // 4].mean(axis=0), red_mask(early)[-H // 4 :].mean(axis=0)
    assert ((top < 0.5) & (bottom > 0.9)).any() and ((bottom < 0.5) & (top > 0.9)).any()
    assert red_mask(late).mean() > 0.97


def test_a_rectangles_effect_grows_its_picture_in_pieces(dragon_server, urls, tmp_path):
    """effect type="rectangles": early on, the first pieces have grown, the last are still
    small around their centres (black around them); then the picture is whole."""
    early, late = effect_frames(dragon_server, urls, tmp_path, "rectangles", 14, 2 * FPS - 3)
    first, last = (
        red_mask(early)[: H // 2, : W // 3],
        red_mask(early)[H // 2 :, 2 * W // 3 :],
    )  # 0.56 s
    assert first.mean() > 0.9 and last.mean() < 0.5
    assert last[last.shape[0] // 2, last.shape[1] // 2]  # the last grows from its centre
    assert red_mask(late).mean() > 0.97


def test_an_explode_effect_breaks_its_picture_at_its_end(dragon_server, urls, tmp_path):
    """effect type="explode": whole until its last 0.8 s, then in pieces flying away from
    the centre (black between and around them)."""
    whole, broken = effect_frames(dragon_server, urls, tmp_path, "explode", 20, 2 * FPS - 2)
    assert red_mask(whole).mean() > 0.97
    assert 0.02 < red_mask(broken).mean() < 0.5
    assert not red_mask(broken)[H // 2 - 4 : H // 2 + 4, W // 2 - 4 : W // 2 + 4].any()  # gone


def test_a_quadratic_animator_eases_in_and_out(dragon_server, tmp_path):
    """Two overlays slide in over the same second, one linear, one quadratic: a quarter
    of the way in time, the linear one has gone a quarter of the way, the quadratic one
    an eighth; halfway both are halfway; at the end both are in place."""
    from dragon.sxml import layout

    def sliding(colour: str, top: str, mode: str) -> str:
        return (
            f'<overlay left="0.4" top="{top}" width="0.2" height="0.2"><image color="{colour}"/>'
            f'<animator type="slide-in" direction="right" duration="2" mode="{mode}"/></overlay>'
        )

    result = assert_success(
        create(
            dragon_server,
            movie(
                '<stack duration="2.4"><effect type="none"><image color="#000000"/></effect>'
                + sliding("#0000ff", "0.1", "linear")
                + sliding("#00ff00", "0.6", "quadratic")
                + "</stack>"
            ),
        )
    )
    assert not result.get("warnings"), result
    path = fetch(dragon_server, result["export"], tmp_path, "eased.mp4")
    x, _, w, _ = layout.place(
        layout.placement({"left": "0.4", "top": "0.1", "width": "0.2", "height": "0.2"}), W, H
    )

    def travelled(picture: np.ndarray, colour: int) -> float:
        """How far along (0: just off the left edge, 1: in place) the overlay's right edge is."""
        found = box_of(picture, colour)
        assert found is not None
        right = found[0] + found[2]
        return right / (x + w)

    quarter, half, end = frame(path, 12), frame(path, 25), frame(path, 55)
    assert travelled(quarter, 2) == pytest.approx(0.25, abs=0.04)
    assert travelled(quarter, 1) == pytest.approx(0.125, abs=0.04)
    assert travelled(half, 1) == pytest.approx(travelled(half, 2), abs=0.04)
    assert travelled(end, 1) == pytest.approx(1.0, abs=0.02)


def test_look_filters_change_the_frame_as_their_names_say(dragon_server, origin, tmp_path):
    """One movie, a second per filter over the same checkerboard (or a flat grey), each
    second's middle frame compared with the unfiltered one."""
    checker = origin.add("sxml/looks/checker.png", checker_png(), "image/png")
    stripes = origin.add("sxml/looks/stripes.png", stripes_png(), "image/png")
    grey = origin.add("sxml/looks/grey.png", media.image_bytes(320, 240, (100, 100, 100), "PNG"))
    parts = [
        (checker, ""),
        (checker, '<filter type="blur" radius="0.02"/>'),
        (checker, '<filter type="frame" width="0.05" color="#00FF00"/>'),
        (checker, '<filter type="tint" color="#0000FF"/>'),
        (checker, '<filter type="colormap" colorStart="#FF0000" colorEnd="#0000FF"/>'),
        (grey, '<filter type="threshold" value="0.3"/>'),
        (grey, '<filter type="exposure" value="1"/>'),
        (grey, ""),
        (grey, '<filter type="noise" amount="0.3"/>'),
        (stripes, ""),
        (stripes, '<filter type="hblur" radius="0.02"/>'),
    ]
    body = "".join(
        f'<stack duration="1"><effect type="none"><image filename="{src}"/></effect>{f}</stack>'
        for src, f in parts
    )
    result = assert_success(create(dragon_server, movie(body)))
    assert not [w for w in result.get("warnings", []) if "filter" in w], result["warnings"]
    path = fetch(dragon_server, result["export"], tmp_path, "looks.mp4")
    shots = [frame(path, FPS * i + FPS // 2).astype(int) for i in range(len(parts))]
    plain, blurred, framed, tinted, mapped, cut, exposed, flat, noisy, striped, hblurred = shots
    middle = (slice(H // 4, 3 * H // 4), slice(W // 4, 3 * W // 4))

    def edges(picture, axis):  # mean difference between neighbours along one axis
        return np.abs(np.diff(picture[middle].mean(axis=2), axis=axis)).mean()

    # blur lowers the high frequencies; hblur only across, not down
    assert edges(blurred, 1) < 0.5 * edges(plain, 1) and edges(blurred, 0) < 0.5 * edges(plain, 0)
    left, right = (
        (slice(H // 4, 3 * H // 4), slice(W // 4, W // 2 - 8)),
        (
            slice(H // 4, 3 * H // 4),
            slice(W // 2 + 8, 3 * W // 4),
        ),
    )

    def diff(picture, part, axis):
        return np.abs(np.diff(picture[part].mean(axis=2), axis=axis)).mean()

    assert diff(hblurred, left, 1) < 0.6 * diff(striped, left, 1)  # stripes across: blurred
    assert diff(hblurred, right, 0) > 0.9 * diff(striped, right, 0)  # stripes down: kept
    # frame: a green border, the inside as it was
    border = framed[2, W // 2]
    assert border[1] > 180 and border[0] < 80 and border[2] < 80
    assert np.abs(framed[middle] - plain[middle]).mean() < 10
    # tint: shades of blue only
    assert tinted[middle][..., 2].max() > 150 and tinted[middle][..., :2].max() < 60
    # colormap: the black squares red, the white ones blue
    dark = plain[middle].sum(axis=2) < 200
    assert mapped[middle][dark][:, 0].mean() > 150 and mapped[middle][dark][:, 2].mean() < 80
    assert mapped[middle][~dark][:, 2].mean() > 150 and mapped[middle][~dark][:, 0].mean() < 80
    # threshold: the grey (100, above 0.3) is white; exposure: brighter; noise: grain
    assert cut[middle].mean() > 220
    assert exposed[middle].mean() > flat[middle].mean() + 50
    assert noisy[middle].std() > flat[middle].std() + 5


# -- maps ------------------------------------------------------------------------------------


def test_a_map_is_drawn_from_the_tile_server_with_its_marker_and_attribution(
    make_server, origin, tmp_path
):
    """Tiles from a local tile server (green and blue in a checkerboard), a marker at the
    centre, the attribution in the bottom right corner."""
    lat, lon, zoom = 37.20, -93.27, 10
    cx = (lon + 180) / 360 * 2**zoom
    cy = (1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * 2**zoom
    for x in range(int(cx) - 4, int(cx) + 5):
        for y in range(int(cy) - 3, int(cy) + 4):
            colour = (0, 160, 0) if (x + y) % 2 else (0, 0, 200)
            origin.add(f"/tiles/{zoom}/{x}/{y}.png", media.image_bytes(256, 256, colour, "PNG"))
    server = make_server(
        env={
            "DRAGON_MAP_TILE_URL": f"{origin.url}/tiles/{{z}}/{{x}}/{{y}}.png",
            "DRAGON_MAP_ATTRIBUTION": "Tiles by the test",
        }
    )
    definition = movie(
        f'<effect type="none" duration="1"><image type="map" center="{lat},{lon}"'
        f' zoom="{zoom}" markers="{lat},{lon}"/></effect>'
    )
    result = assert_success(create(server, definition))
    assert not result.get("warnings"), result
    assert f"/tiles/{zoom}/{int(cx)}/{int(cy)}.png" in origin.hits
    picture = frame(fetch(server, result["export"], tmp_path, "map.mp4"), 12).astype(int)
    red = (picture[..., 0] > 150) & (picture[..., 1] < 90) & (picture[..., 2] < 90)
    green = (picture[..., 1] > 110) & (picture[..., 0] < 80) & (picture[..., 2] < 80)
    blue = (picture[..., 2] > 140) & (picture[..., 0] < 80) & (picture[..., 1] < 80)
    assert green.mean() > 0.2 and blue.mean() > 0.2  # the tiles
    rows, columns = np.nonzero(red)
    assert rows.size and abs(columns.mean() - W / 2) < 0.05 * W  # the pin, at the centre,
    assert H / 2 - 0.15 * H < rows.mean() < H / 2  # standing on it
    corner = picture[int(0.94 * H) :, int(0.85 * W) :]
    assert (corner.min(axis=2) > 200).mean() > 0.3  # the attribution's white box...
    assert (corner.max(axis=2) < 150).any()  # ...with its dark text


def test_a_map_without_a_tile_server_ends_the_task_with_the_setting_to_set(dragon_server):
    definition = movie('<effect type="none" duration="1"><image type="map" center="1,2"/></effect>')
    final = create(dragon_server, definition)
    assert final["status"] == "error" and final["error_code"] == "parameters", final
    assert "DRAGON_MAP_TILE_URL" in json.dumps(final["error"])


def test_the_old_looks_flashback_tv_and_bleach(dragon_server, origin, tmp_path):
    """flashback: a grey picture turns sepia, darker in its corners; tv: scan lines; bleach:
    colours washed out."""
    colour = origin.add("sxml/looks/colour.png", media.image_bytes(320, 240, (200, 60, 60), "PNG"))
    grey = origin.add("sxml/looks/grey2.png", media.image_bytes(320, 240, (128, 128, 128), "PNG"))
    parts = [
        (colour, ""),
        (colour, '<filter type="bleach"/>'),
        (grey, '<filter type="flashback"/>'),
        (grey, '<filter type="tv"/>'),
    ]
    body = "".join(
        f'<stack duration="1"><effect type="none"><image filename="{src}"/></effect>{f}</stack>'
        for src, f in parts
    )
    result = assert_success(create(dragon_server, movie(body)))
    assert not [w for w in result.get("warnings", []) if "filter" in w], result["warnings"]
    path = fetch(dragon_server, result["export"], tmp_path, "old-looks.mp4")
    plain, bleached, old, tv = (frame(path, FPS * i + FPS // 2).astype(int) for i in range(4))
    middle = (slice(H // 3, 2 * H // 3), slice(W // 3, 2 * W // 3))

    def spread(picture):  # how far a pixel's channels are apart: its colourfulness
        return (picture[middle].max(axis=2) - picture[middle].min(axis=2)).mean()

    assert spread(bleached) < 0.8 * spread(plain)
    centre = old[middle].reshape(-1, 3).mean(axis=0)
    assert centre[0] > centre[2] + 20  # sepia: warmer than the grey
    assert old[:10, :10].mean() < old[middle].mean() - 10  # the vignette
    rows = tv[middle].mean(axis=(1, 2))
    assert rows.max() - rows.min() > 15  # dark scan lines between light ones
