"""video.create at its limits, from outside: a render the tool cannot hold in memory, a
filtergraph ffmpeg cannot build, and a definition too costly to draw within a task's time.
"""

from __future__ import annotations

import re
from datetime import datetime

from tests.support import media


def movie(body: str) -> str:
    return f'<movie service="craftsman-1.0"><body>{body}</body></movie>'


def rotator(urls: list[str], seconds: float = 0.4) -> str:
    images = "".join(f'<image filename="{u}"/>' for u in urls)
    return movie(f'<effect type="rotator" duration="{seconds * len(urls)}">{images}</effect>')


def test_a_rotator_past_the_tool_memory_limit_ends_resource_limit(make_server, origin):
    server = make_server(env={"DRAGON_TOOL_MEMORY_BYTES": str(1024**3)})
    urls = [
        origin.add(f"limits/{i}.jpg", media.image_bytes(320, 240, (i, 0, 255 - i)), "image/jpeg")
        for i in range(100)
    ]
    status = server.run_task(
        {"task_name": "video.create", "definition": rotator(urls), "profile": "1080p"}
    )
    assert status["status"] == "error", status
    assert status["error_code"] == "resource_limit", status
    assert "DRAGON_TOOL_MEMORY_BYTES" in status["error"] and "1024 MiB" in status["error"]
    assert "filter" not in status["error"].lower(), status["error"]  # ffmpeg's internals


def titled_crossfades(count: int) -> str:
    """``count`` crossfades of 1 s between titled colour stills of 2 s."""
    slide = (
        '<stack duration="2"><effect type="none"><image color="#{:06x}"/></effect>'
        '<text type="legend">Slide {}</text></stack>'
    )
    items = [slide.format(i * 0x2345 % 0xFFFFFF, i) for i in range(count + 1)]
    return movie('<transition type="crossfade" duration="1"/>'.join(items))


def test_a_definition_too_costly_to_render_is_refused_at_once(make_server):
    # The bound at 900 s (the default is the task timeout, which this movie is under).
    dragon_server = make_server(env={"DRAGON_VIDEO_CREATE_MAX_RENDER_SECONDS": "900"})
    # 500 transitions at 1080p between titled slides: 500 s of movie, 1,000 s of layers and
    # 500 s mixed, estimated at more than 1,000 s of rendering.
    status = dragon_server.run_task(
        {"task_name": "video.create", "definition": titled_crossfades(500), "profile": "1080p"}
    )
    assert status["status"] == "error", status.get("error")
    events = {k: datetime.fromisoformat(v) for k, v in status["events"].items()}
    assert "started" not in events  # refused before its work began: nothing rendered
    assert (events["completed"] - events["queued"]).total_seconds() < 20
    [message] = status["error"]["parameters"]["definition"]
    assert "DRAGON_VIDEO_CREATE_MAX_RENDER_SECONDS" in message and "900 s" in message, message
    estimate = int(re.search(r"about (\d+) s", message)[1])  # type: ignore[index]
    assert estimate > 900
    # A short movie of the same kind renders, without a warning.
    status = dragon_server.run_task(
        {"task_name": "video.create", "definition": titled_crossfades(3), "profile": "1080p"}
    )
    assert status["status"] == "success", status
    assert not any("should take" in w for w in status["result"].get("warnings", []))


def test_a_filtergraph_ffmpeg_cannot_hold_gets_a_message_to_act_on(make_server, origin):
    # 20 photos crossfading at 1080p: ffmpeg's graph needs more than the default 2 GiB of
    # address space (frame pools and the threads of each scaler) and it stops with "Error
    # marking filters as finished", no errno, which tells a user nothing.
    server = make_server(env={"DRAGON_TOOL_MEMORY_BYTES": str(2 * 1024**3)})
    urls = [
        origin.add(f"graph/{i}.jpg", media.image_bytes(640, 480, (9 * i, 99, 0)), "image/jpeg")
        for i in range(20)
    ]
    items = [f'<effect type="none" duration="2"><image filename="{u}"/></effect>' for u in urls]
    definition = movie('<transition type="crossfade" duration="1"/>'.join(items))
    status = server.run_task(
        {"task_name": "video.create", "definition": definition, "profile": "1080p"}
    )
    assert status["status"] == "error", status
    assert status["error_code"] == "resource_limit", status
    message = status["error"]
    assert "filters" not in message.lower(), message
    assert "2048 MiB" in message and "DRAGON_TOOL_MEMORY_BYTES" in message, message
    assert "smaller profile" in message, message
