"""video.create at its limits, from outside: a render the tool cannot hold in memory, a
filtergraph ffmpeg cannot build, and a definition too costly to draw within a task's time.
"""

from __future__ import annotations

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
