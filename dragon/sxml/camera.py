"""The camera a movie is seen through, and what depth (z) does to a node on screen.

SXML places nodes in OpenGL coordinates: x from -aspect to aspect, y from -1 (bottom) to 1
(top), z towards the viewer. We read the scene as seen by a pinhole camera on the z axis,
looking at the origin, with a vertical field of view of 45 degrees (OpenGL's customary
one). The camera stands at ``DISTANCE`` from the plane z = 0, chosen so that this plane
fills the frame exactly: a node at z = 0 is drawn at the size and place its 2D placement
gives, which keeps every movie without depth as it was.

A node at depth z, parallel to the screen, is then drawn ``DISTANCE / (DISTANCE - z)``
times its size, its centre pulled towards (z < 0) or pushed away from (z > 0) the frame's
centre by the same factor: negative z is further away and smaller. A node at or behind the
camera cannot be seen; depths nearer than ``NEAREST`` are drawn at ``NEAREST`` (twenty
times the size) and the definition gets a warning.
"""

from __future__ import annotations

import math

FIELD_OF_VIEW_DEGREES = 45.0
DISTANCE = 1.0 / math.tan(math.radians(FIELD_OF_VIEW_DEGREES) / 2)  # about 2.414
MAX_SCALE = 20.0
NEAREST = DISTANCE * (1.0 - 1.0 / MAX_SCALE)


def depth_scale(z: float) -> float:
    """How many times its size a node at depth ``z`` is drawn."""
    return DISTANCE / (DISTANCE - min(z, NEAREST))


def depth_scale_expr(z: str) -> str:
    """``depth_scale`` as an ffmpeg expression of the depth expression ``z``."""
    return f"({DISTANCE:.9g}/({DISTANCE:.9g}-min({NEAREST:.9g},{z})))"
