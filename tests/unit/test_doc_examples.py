"""The checker of documented examples (tests/support/doc_examples.py) tells a page that is
true from one that is not, however keys and times differ from run to run."""

from __future__ import annotations

import pytest

from tests.support.doc_examples import Page, examples

PAGE = """Intro.

```console
$ dragon run hello name=doc
AGREUCDLKRGB2S3WS5HQOUCHKQ queued 0%
...
AGREUCDLKRGB2S3WS5HQOUCHKQ success 100%
{"key": "AGREUCDLKRGB2S3WS5HQOUCHKQ", "at": "2026-12-01T14:36:04.537833+00:00", "result": "..."}
$ dragon status AGREUCDLKRGB2S3WS5HQOUCHKQ
{"key": "AGREUCDLKRGB2S3WS5HQOUCHKQ", "output": "http://127.0.0.1:8080/storage/x/dragon-image.thumb-F88bhY"}
```

```python
print("…" + key[-6:])
```
```text
…OUCHKQ
…Q2QTFE
```

```text
not an example: no program before it
```
"""
RUN = "AGREV4D6BZ2YRWRBTRTKA733HQ"
OTHER = "AGREV4EJC7EV7OV3FAGBHS7KWE"


def test_the_examples_of_a_page_in_order():
    found = examples(PAGE)
    assert [(e.kind, e.code) for e in found] == [
        ("console", "dragon run hello name=doc"),
        ("console", "dragon status AGREUCDLKRGB2S3WS5HQOUCHKQ"),
        ("python", 'print("…" + key[-6:])\n'),
    ]
    assert found[0].expected.count("\n") == 4 and found[2].expected == "…OUCHKQ\n…Q2QTFE\n"


def run_output(key: str = RUN, status: str = "success") -> str:
    return (
        f"{key} queued 0%\n{key} executing 0%\n{key} executing 55%\n{key} {status} 100%\n"
        f'{{"key": "{key}", "at": "2027-01-02T03:04:05.6+00:00", "result": "Hello doc"}}\n'
    )


def test_a_true_page_matches_whatever_its_keys_and_times_are():
    page = Page({"http://127.0.0.1:8080": "http://127.0.0.1:41234"})
    run, status, program = examples(PAGE)
    page.check(run, run_output())
    assert page.code(status.code) == f"dragon status {RUN}"  # the key of this run
    url = "http://127.0.0.1:41234/storage/x/dragon-image.thumb-Zz9xQ1"
    page.check(status, f'{{"key": "{RUN}", "output": "{url}"}}\n')
    page.check(program, "…KA733H\n…B2C3D4\n")


@pytest.mark.parametrize(
    "output",
    [
        run_output(status="error"),  # another status
        run_output().replace(f"{RUN} queued", f"{OTHER} queued"),  # two keys for one task
        run_output().replace("Hello doc", "Hello doc\nand one more line"),
        "".join(run_output().splitlines(keepends=True)[1:]),  # the first line missing
    ],
)
def test_a_page_that_is_not_true_fails(output):
    page = Page({})
    run, _, _ = examples(PAGE)
    with pytest.raises(AssertionError):
        page.check(run, output)


def test_two_keys_of_the_page_are_two_keys_of_the_run():
    page = Page({})
    _, _, program = examples(PAGE)
    with pytest.raises(AssertionError, match="which the page calls"):
        page.check(program, "…KA733H\n…KA733H\n")
    page = Page({"http://127.0.0.1:8080": "http://127.0.0.1:41234"})
    run, status, _ = examples(PAGE)
    page.check(run, run_output())
    with pytest.raises(AssertionError):  # the status of another task than the page's
        page.check(status, f'{{"key": "{OTHER}", "output": "x"}}\n')


UPLOADED = """```console
$ dragon upload a.jpg
{"input": "upload:3f0c9e7d1b2a4c5e8f6a7b8c9d0e1f2a"}
$ dragon run image.info url=upload:3f0c9e7d1b2a4c5e8f6a7b8c9d0e1f2a
{"url": "upload:3f0c9e7d1b2a4c5e8f6a7b8c9d0e1f2a"}
```
"""


def test_an_upload_id_is_bound_as_a_key_is():
    upload, info = examples(UPLOADED)
    page = Page({})
    page.check(upload, '{"input": "upload:00112233445566778899aabbccddeeff"}\n')
    assert page.code(info.code).endswith("url=upload:00112233445566778899aabbccddeeff")
    with pytest.raises(AssertionError):  # another upload than the one the page sent
        page.check(info, '{"url": "upload:ffeeddccbbaa99887766554433221100"}\n')
