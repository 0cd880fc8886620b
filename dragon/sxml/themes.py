"""The looks of the ``director.theme.*`` widgets: transitions, photo motion, fonts, colours.

No description of the original themes survives; only their names do, in the definitions
clients still send (``director.theme.tiles`` from real estate listings). Each name here
is drawn in the spirit of its name, and a name we do not know gets one of them chosen by
a stable hash of the name, so two movies of one theme always look alike and two themes
(most of the time) do not. docs/sxml.md lists them.
"""

from __future__ import annotations

import dataclasses
import zlib


@dataclasses.dataclass(frozen=True)
class Theme:
    name: str
    transitions: tuple[tuple[str, str], ...]  # (type, direction), used in turn
    transition_seconds: float
    still: str  # the effect that shows a photo
    look: str | None  # a look filter on photos (looks.py), or none
    font: str  # an old font name (text.py maps it to a DejaVu face)
    title_color: str  # title cards: text on a full-frame background
    title_background: str
    caption_color: str


THEMES = {
    theme.name: theme
    for theme in (
        Theme(
            "classic",
            (("crossfade", "left"),),
            0.5,
            "kenburns",
            None,
            "arial",
            "#FFFFFF",
            "#000000",
            "#FFFFFF",
        ),
        Theme(
            "tiles",
            (("move", "left"), ("move", "up"), ("move", "right"), ("move", "down")),
            0.6,
            "none",
            None,
            "arialbold",
            "#FFFFFF",
            "#1F3A5F",
            "#FFFFFF",
        ),
        Theme(
            "modern",
            (("over", "left"), ("over", "right")),
            0.5,
            "kenburns",
            None,
            "verdana",
            "#111111",
            "#F2F2F2",
            "#FFFFFF",
        ),
        Theme(
            "vintage",
            (("crossfade", "left"), ("radial", "left")),
            1.0,
            "kenburns",
            "flashback",
            "timesnewroman",
            "#F1E3C6",
            "#3B2A1A",
            "#F1E3C6",
        ),
        Theme(
            "bold",
            (("cube", "left"), ("cube", "right")),
            0.7,
            "kenburns",
            None,
            "landspeedrecord",
            "#FFD400",
            "#000000",
            "#FFD400",
        ),
        Theme(
            "journal",
            (("strip", "left"), ("scan", "right")),
            0.6,
            "none",
            "bleach",
            "couriernew",
            "#202020",
            "#E8E4DA",
            "#FFFFFF",
        ),
    )
}
ORDER = sorted(THEMES)


def pick(name: str) -> Theme:
    """The theme of ``director.theme.NAME``: its own, or one chosen by the name's hash."""
    found = THEMES.get(name)
    if found is not None:
        return found
    return THEMES[ORDER[zlib.crc32(name.encode()) % len(ORDER)]]
