"""Spoken tracks: ``<audio voice="...">text</audio>`` read aloud by espeak-ng.

The original service spoke with NeoSpeech voices (``neospeech:julie``, ``neospeech:paul``,
...); we map each to the nearest espeak-ng voice by language and sex, take a bare language
(``fr``, ``en-gb``) as it is, and read anything else in English with a warning. The text
reaches espeak-ng on its standard input as plain text (never in argv, never as SSML), and
espeak-ng runs as any tool does: its own process group, a time limit, a memory limit.

The spoken track is then a WAV file in the task's folder that the movie uses as it uses a
downloaded audio file: timed by its length, mixed, faded and ducked like any ``<audio>``.
Its element gets an internal ``filename`` (``speech:<n>``) that no URL can take, so the
rest of the renderer needs no case of its own.
"""

from __future__ import annotations

import re
from pathlib import Path

from dragon.sxml.model import Node

PREFIX = "speech:"
MAX_CHARACTERS = 5000
WORDS_PER_MINUTE = 160

# NeoSpeech's voices by name: (espeak-ng language, variant). Female voices take espeak's
# female variant f3, male ones m3.
NEOSPEECH = {
    "julie": ("en-us", "f3"),
    "kate": ("en-us", "f3"),
    "ashley": ("en-us", "f3"),
    "beth": ("en-us", "f3"),
    "paul": ("en-us", "m3"),
    "james": ("en-us", "m3"),
    "bridget": ("en-gb", "f3"),
    "hugh": ("en-gb", "m3"),
    "violeta": ("es", "f3"),
    "francisco": ("es", "m3"),
    "chloe": ("fr", "f3"),
    "leo": ("fr", "m3"),
    "liliane": ("fr", "f3"),
    "yumi": ("ja", "f3"),
    "sayaka": ("ja", "f3"),
    "yuna": ("ko", "f3"),
    "lily": ("cmn", "f3"),
    "hui": ("cmn", "f3"),
}
LANGUAGE = re.compile(r"^[a-z]{2,3}(-[a-z]{2,8})?$")
DEFAULT = ("en-us", "m3")


def is_spoken(node: Node) -> bool:
    return node.tag == "audio" and bool(node.attrs.get("voice") or node.text.strip())


def voice(name: str) -> tuple[str, str | None]:
    """The espeak-ng voice (``language+variant``) for a voice attribute, and a warning when
    it is not one we know."""
    wanted = name.strip().lower()
    if not wanted:
        return "+".join(DEFAULT), None
    person = wanted.split(":", 1)[1] if wanted.startswith("neospeech:") else wanted
    if person in NEOSPEECH:
        return "+".join(NEOSPEECH[person]), None
    if LANGUAGE.match(wanted):
        return wanted, None
    return "+".join(DEFAULT), f'voice="{name[:40]}" is not one we know: read in English'


def argv(espeak_voice: str, out: Path) -> list[str]:
    """espeak-ng reading its standard input as plain text into the WAV file ``out``."""
    return ["espeak-ng", "-v", espeak_voice, "-s", str(WORDS_PER_MINUTE), "-w", str(out), "--stdin"]
