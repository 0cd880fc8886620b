"""``dragon.media.geometry.scale_to``: the fit every image and video task shares."""

from __future__ import annotations

import pytest

from dragon.media.geometry import scale_to


@pytest.mark.parametrize(
    ("width", "height", "expected"),
    [
        (None, None, (640, 480)),  # nothing asked: the source's size
        (320, None, (320, 240)),  # one side: the other follows the aspect
        (None, 120, (160, 120)),
        (320, 120, (160, 120)),  # both: the tighter side wins
        (100, 480, (100, 75)),
        (1280, 960, (1280, 960)),  # enlarging is allowed
        (0, 60, (80, 60)),  # 0 counts as not given
        (1, None, (1, 1)),  # never below one pixel
    ],
)
def test_scale_to(width, height, expected):
    assert scale_to(640, 480, width, height) == expected
