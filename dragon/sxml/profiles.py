"""video.create output profiles: the original service's table, its frame-rate variants, and the
legacy names of the original service's choice list.

Every profile is H.264 (yuv420p, ``+faststart``) with AAC at 44.1 kHz stereo in MP4.
The legacy flv/wmv/mpg families are produced as MP4 at their documented size, frame rate
and bitrates (the simpler option): no client of ours can play a WMV
better than an MP4. DVD sizes are rendered with square pixels. Names from the historic
choice list whose numbers were never published map to the nearest documented profile
(noted in ``LEGACY``); any other name is refused with the list of valid ones.
"""

from __future__ import annotations

import dataclasses
import difflib
from fractions import Fraction

from dragon.media.geometry import even

NTSC = Fraction(30000, 1001)
FILM = Fraction(24000, 1001)
PREVIEW_HEIGHT = 240


@dataclasses.dataclass(frozen=True)
class Profile:
    name: str
    width: int
    height: int
    rate: Fraction
    video_kbps: int
    audio_kbps: int

    def variant(self, name: str, rate: Fraction) -> Profile:
        return dataclasses.replace(self, name=name, rate=rate)

    def preview(self) -> Profile:
        """The fast low-resolution rendering published before the export."""
        height = min(self.height, PREVIEW_HEIGHT)
        width = even(self.width * height / self.height)
        return dataclasses.replace(
            self,
            name=f"{self.name}-preview",
            width=width,
            height=height,
            video_kbps=min(self.video_kbps, 400),
            audio_kbps=64,
        )


def _p(
    name: str, width: int, height: int, video: int, audio: int, rate: Fraction = Fraction(25)
) -> Profile:
    return Profile(name, width, height, Fraction(rate), video, audio)


CORE = [
    _p("240p", 426, 240, 400, 64),
    _p("360p", 640, 360, 1024, 128),
    _p("480p", 854, 480, 1500, 128),
    _p("480p-4-3", 640, 480, 1500, 128),
    _p("720p", 1280, 720, 1500, 256),
    _p("720p-hq", 1280, 720, 3000, 256),
    _p("720p-vhq", 1280, 720, 5000, 256),
    _p("1080p", 1920, 1080, 4500, 256),
    _p("square-400", 400, 400, 800, 128),
    _p("square-640", 640, 640, 1200, 128),
]

# Suffixes that change only the frame rate.
RATES = {
    "-29-97-fps": NTSC,
    "-23-976-fps": FILM,
    "-23-98-fps": FILM,
    "-24-fps": Fraction(24),
    "-12-fps": Fraction(12),
    "-12-5-fps": Fraction(25, 2),
    "-11-988-fps": Fraction(12000, 1001),
}

# The 2012 published table, rendered as MP4.
PUBLISHED = [
    _p("iphone", 480, 320, 700, 96),
    _p("youtube", 640, 360, 1024, 128),
    _p("quicktime", 640, 480, 1024, 128),
    _p("quicktime-small", 320, 240, 256, 64),
    _p("flash-small", 320, 240, 192, 64),
    _p("iphone-flv", 480, 320, 1024, 96),
    _p("youtube-flv", 640, 360, 1700, 128),
    _p("flash", 640, 480, 512, 96),
    _p("flash-hq", 640, 480, 1200, 128),
    _p("mobile-small", 176, 144, 92, 32, Fraction(15)),
    _p("mobile", 320, 240, 256, 32),
    _p("wmv1", 640, 480, 1024, 128),
    _p("wmv2", 640, 480, 1024, 128),
    _p("dvd-ntsc-4-3", 720, 480, 5000, 192, NTSC),
    _p("dvd-ntsc-16-9", 720, 480, 5000, 192, NTSC),
    _p("dvd-ntsc-4-3-h", 352, 240, 2500, 192, NTSC),
    _p("dvd-ntsc-16-9-h", 352, 240, 2500, 192, NTSC),
    _p("dvd-pal-4-3", 720, 576, 5000, 192),
    _p("dvd-pal-16-9", 720, 576, 5000, 192),
    _p("dvd-pal-4-3-h", 352, 288, 2500, 192),
    _p("dvd-pal-16-9-h", 352, 288, 2500, 192),
]

# Names of the historic choice list without published numbers: the nearest profile, and
# its frame rate when it differs.
LEGACY: dict[str, tuple[str, Fraction | None]] = {
    "iphone-24p": ("iphone", Fraction(24)),
    "iphone-slow": ("iphone", None),
    "iphone-sslow": ("iphone", None),
    "iphone-16-9": ("iphone", None),
    "iphone-16-9-slow": ("iphone", None),
    "iphone-16-9-12fp": ("iphone", Fraction(12)),
    "youtube-slow": ("youtube", None),
    "youtube-slow-flv": ("youtube", None),
    "youtube-5fps": ("youtube", Fraction(5)),
    "youtube-12-5fps": ("youtube", Fraction(25, 2)),
    "flash-h264": ("flash", None),
    "flash-large-4-3": ("flash-hq", None),
    "flash-med-16-9": ("youtube", None),
    "wmv2-large-4-3": ("wmv2", None),
    "ntsc-wide": ("dvd-ntsc-16-9", None),
    "ntsc-wide-wmv": ("dvd-ntsc-16-9", None),
    "dvd-mpeg1": ("dvd-ntsc-4-3-h", None),
    "dvd-mpeg1-small": ("dvd-ntsc-4-3-h", None),
    "special": ("360p", None),
    "th720p": ("720p", None),
    "cine-half-hd": ("720p", None),
}


def _table() -> dict[str, Profile]:
    table: dict[str, Profile] = {}
    for profile in CORE:
        table[profile.name] = profile
        for suffix, rate in RATES.items():
            table[profile.name + suffix] = profile.variant(profile.name + suffix, rate)
    for profile in PUBLISHED:
        table.setdefault(profile.name, profile)
    for name, (base, legacy_rate) in LEGACY.items():
        table[name] = table[base].variant(name, legacy_rate or table[base].rate)
    return table


PROFILES = _table()
DEFAULT = "360p"


def get(name: str) -> Profile | None:
    return PROFILES.get(name)


def invalid_message(name: str) -> str:
    """The refusal of an unknown profile: the close names first, then every name."""
    close = difflib.get_close_matches(str(name), PROFILES, n=3, cutoff=0.6)
    hint = f" (did you mean {', '.join(repr(n) for n in close)}?)" if close else ""
    names = ", ".join(repr(n) for n in sorted(PROFILES))
    return f"{str(name)[:60]!r} is not a valid profile{hint}, choose one of: {names}"


def _fps(rate: Fraction) -> str:
    return f"{float(rate):.3f}".rstrip("0").rstrip(".")


def _row(profile: Profile) -> str:
    return (
        f"| `{profile.name}` | {profile.width}x{profile.height} | {_fps(profile.rate)} "
        f"| {profile.video_kbps} | {profile.audio_kbps} |"
    )


def reference() -> str:
    """Every profile name, for docs/tasks.md (the OpenAPI schema lists them as an enum)."""
    head = "| profile | size | frames/s | video kbit/s | audio kbit/s |\n|---|---|---|---|---|"
    core = "\n".join(_row(p) for p in CORE)
    published = "\n".join(_row(p) for p in PUBLISHED)
    suffixes = ", ".join(f"`{s}` ({_fps(r)})" for s, r in RATES.items())
    legacy = ", ".join(
        f"`{name}` (`{base}`" + (f" at {_fps(rate)} frames/s)" if rate else ")")
        for name, (base, rate) in LEGACY.items()
    )
    return (
        f"### `video.create` profiles\n\nThe default is `{DEFAULT}`. Every profile is H.264 "
        "and AAC in MP4.\n\n"
        f"{head}\n{core}\n\nEach of these also exists with a suffix that changes only its "
        f"frame rate (`720p-29-97-fps`): {suffixes}.\n\nThe original service's published "
        f"table:\n\n{head}\n{published}\n\nNames of the original service's choice list "
        f"without published numbers are rendered as the profile named beside them: {legacy}.\n"
    )
