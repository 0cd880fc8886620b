"""``dragon doctor``'s tool checks, on a machine faked here (the e2e test runs the real one)."""

from __future__ import annotations

from pathlib import Path

import pytest

from dragon import doctor


@pytest.fixture
def machine(monkeypatch, tmp_path):
    """A machine with ffprobe and ImageMagick, ffmpeg as asked, and one font file."""
    state = {"ffmpeg": True, "encoders": set(doctor.ENCODERS), "filters": set(doctor.FILTERS)}
    tools = {"ffprobe": "/bin/ffprobe", "magick": "/bin/magick"}

    def which(name: str) -> str | None:
        if name == "ffmpeg":
            return "/bin/ffmpeg" if state["ffmpeg"] else None
        return tools.get(name)

    def listed(argv: list[str]) -> set[str]:
        return state["encoders"] if argv[-1] == "-encoders" else state["filters"]

    versions = {"ffmpeg": "7.1", "ffprobe": "7.1", "imagemagick": "7.1.1", "pillow": "11.0"}
    monkeypatch.setattr(doctor, "tool_versions", lambda: versions)
    monkeypatch.setattr(doctor, "imagemagick_binary", lambda: "/bin/magick")
    monkeypatch.setattr(doctor.shutil, "which", which)
    monkeypatch.setattr(doctor, "listed", listed)
    monkeypatch.setattr(doctor, "FONT_DIR", tmp_path)
    (tmp_path / doctor.FONTS[0]).write_bytes(b"")
    return state


def by_name(checks: list[doctor.Check]) -> dict[str, doctor.Check]:
    return {c.name: c for c in checks}


def test_everything_there_but_fonts(machine):
    checks = by_name(doctor.check_tools())
    assert list(checks) == [
        "ffmpeg",
        "ffprobe",
        "ffmpeg encoders",
        "ffmpeg filters",
        "ImageMagick",
        "fonts",
        "Pillow",
    ]
    assert checks["ffmpeg"] == doctor.Check("ffmpeg", True, "7.1 (/bin/ffmpeg)")
    assert checks["ffmpeg encoders"].ok
    assert checks["ffmpeg encoders"].detail == f"{len(doctor.ENCODERS)} needed, all here"
    assert checks["ImageMagick"].detail == "7.1.1 (/bin/magick)"
    fonts = checks["fonts"]
    assert not fonts.ok
    assert fonts.detail == f"missing in {Path(doctor.FONT_DIR)}: {', '.join(doctor.FONTS[1:])}"


def test_an_ffmpeg_without_some_encoders_and_filters(machine):
    machine["encoders"] = set(doctor.ENCODERS) - {"libx264", "mjpeg"}
    machine["filters"] = set(doctor.FILTERS) - {"xfade"}
    checks = by_name(doctor.check_tools())
    assert checks["ffmpeg encoders"].ok is False
    assert checks["ffmpeg encoders"].detail == "missing: libx264, mjpeg"
    assert checks["ffmpeg filters"].detail == "missing: xfade"
    assert "4.3" in checks["ffmpeg filters"].fix


def test_no_ffmpeg_skips_what_it_was_built_with(machine):
    machine["ffmpeg"] = False
    checks = by_name(doctor.check_tools())
    assert checks["ffmpeg"] == doctor.Check("ffmpeg", False, "not found on PATH", doctor.APT)
    assert checks["ffprobe"].ok
    assert "ffmpeg encoders" not in checks and "ffmpeg filters" not in checks
