"""Parameters a task ignores are named in its warnings (dragon.tasks.schema.ignored_parameters),
never refused: old clients send extra fields, and a typo must not pass unseen. The
profiles of ``video.create`` are listed where a client looks for them."""

from __future__ import annotations

from dragon.api.openapi import document
from dragon.sxml import profiles
from dragon.tasks import builtin_tasks
from dragon.tasks.reference import render
from dragon.tasks.schema import ignored_parameters

TASKS = builtin_tasks()


def ignored(task_name: str, **params) -> list[str]:
    schema = TASKS[task_name].schema
    schema.load(params)  # accepted as it is: nothing ignored is refused
    return ignored_parameters(schema, {"task_name": task_name, **params})


def test_each_unknown_parameter_is_named_with_what_it_may_have_meant():
    assert ignored("video.convert", url="https://media.test/a.mp4", widht=200, speed=2) == [
        "parameter 'widht' was ignored: did you mean 'width'?",
        "parameter 'speed' was ignored: it is not a parameter of this task",
    ]


def test_what_the_server_itself_reads_is_never_reported():
    assert (
        ignored(
            "image.thumb",
            url="https://media.test/a.jpg",
            width=10,
            task_store={"type": "volatile"},
            url_callback="https://hooks.test/done",
            url_errback=None,
            task_metas={"any": "thing"},
            block=True,
            batch=True,
            secret="in a query string",
            api_key="in a query string",
        )
        == []
    )


def test_inside_objects_and_lists_of_objects():
    warnings = ignored(
        "video.convert",
        url="https://media.test/a.mp4",
        format="hls",
        renditions=[{"height": 360}, {"height": 240, "hieght": 200}],
        subtitles=None,
    )
    assert warnings == ["parameter 'renditions[1].hieght' was ignored: did you mean 'height'?"]
    warnings = ignored(
        "video.convert",
        url="https://media.test/a.mp4",
        watermark={"url": "https://media.test/logo.png", "posiiton": "top-left"},
    )
    assert warnings == ["parameter 'watermark.posiiton' was ignored: did you mean 'position'?"]


def test_a_size_given_to_video_create_says_where_the_size_comes_from():
    warnings = ignored(
        "video.create",
        definition='<movie service="craftsman-1.0"><body><image color="#ff0000"/></body></movie>',
        width=1280,
        height=720,
    )
    assert len(warnings) == 2
    assert warnings[0].startswith("parameter 'width' was ignored: the size of a movie comes")
    assert "profile" in warnings[0] and warnings[1].startswith("parameter 'height'")


def test_profiles_are_an_enum_of_the_openapi_schema_and_a_table_of_the_reference():
    body = document(TASKS, [], 100)
    profile = body["components"]["schemas"]["task.video.create"]["properties"]["profile"]
    assert profile["enum"] == sorted(profiles.PROFILES) and profile["default"] == "360p"
    reference = render()
    section = reference.split("## `video.create`", 1)[1].split("\n## ", 1)[0]
    assert "### `video.create` profiles" in section
    for name in ("240p", "720p-hq", "1080p", "square-640", "youtube", "dvd-pal-16-9-h"):
        assert f"| `{name}` |" in section
    for suffix in profiles.RATES:
        assert f"`{suffix}`" in section
    for name in profiles.LEGACY:
        assert f"`{name}`" in section


def test_a_mistyped_profile_gets_the_close_names_first():
    message = profiles.invalid_message("720")
    assert message.startswith("'720' is not a valid profile (did you mean '720p'")
