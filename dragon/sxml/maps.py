"""``<image type="map">``: a map drawn from a raster tile server, used as a picture.

The original drew maps from a hosted service. We draw them from the tile server the
operator names in ``DRAGON_MAP_TILE_URL``, a URL with ``{z}``, ``{x}`` and ``{y}`` in the
OpenStreetMap way (``https://tile.example.org/{z}/{x}/{y}.png``): the 256-pixel Web
Mercator tiles that cover the map are downloaded like any media (the guarded fetcher),
joined with Pillow, the markers drawn as pins and the attribution
(``DRAGON_MAP_ATTRIBUTION``) written in the bottom right corner, as tile licences ask.

Attributes: ``center="lat,lon"`` (required), ``zoom`` (0 to 19, default 12; rounded to a
whole level), ``size="WxH"`` (the picture's pixels, default 1280x720, at most 2048 each
way) and ``markers="lat,lon;lat,lon"`` (``|`` separates them too). The element gets an
internal ``filename`` (``map:<n>``) that no URL can take, so the rest of the renderer uses
the drawn file as it uses a downloaded picture. Without a tile server the task ends in
error, except in a director theme's track, where a grey card stands in for the map, with
a warning, as before maps were drawn.
"""

from __future__ import annotations

import math
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from dragon.sxml.model import DefinitionError, Node

PREFIX = "map:"
TILE = 256
DEFAULT_ZOOM = 12
DEFAULT_SIZE = (1280, 720)
MAX_SIDE = 2048
MAX_MARKERS = 50
CARD = "card"  # the attribute a widget's map carries: a grey card stands in without tiles
ATTRS = ("center", "zoom", "size", "markers")
CARD_COLOR = (128, 128, 128)
FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
LATITUDE = 85.0511  # Web Mercator's edge


def _pair(node: Node, raw: str, what: str) -> tuple[float, float]:
    try:
        lat, lon = (float(v) for v in raw.split(","))
    except ValueError:
        raise DefinitionError(node, f'{what} "{raw[:40]}" is not "latitude,longitude"') from None
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise DefinitionError(node, f'{what} "{raw[:40]}" is not on Earth')
    return lat, lon


def check(node: Node) -> None:
    """Raise ``DefinitionError`` for a map we cannot draw (parse.py)."""
    center = node.attrs.get("center")
    if not center:
        raise DefinitionError(node, 'type="map" needs center="latitude,longitude"')
    _pair(node, center, "center")
    node.number("zoom", DEFAULT_ZOOM, minimum=0, maximum=19)
    size(node)
    markers(node)


def size(node: Node) -> tuple[int, int]:
    raw = node.attrs.get("size")
    if not raw:
        return DEFAULT_SIZE
    try:
        width, height = (int(v) for v in raw.lower().split("x"))
    except ValueError:
        raise DefinitionError(node, f'size "{raw[:40]}" is not WIDTHxHEIGHT') from None
    if not (16 <= width <= MAX_SIDE and 16 <= height <= MAX_SIDE):
        raise DefinitionError(node, f"size {raw[:40]} is not 16 to {MAX_SIDE} pixels each way")
    return width, height


def markers(node: Node) -> list[tuple[float, float]]:
    raw = node.attrs.get("markers", "").replace("|", ";")
    found = [_pair(node, part, "marker") for part in raw.split(";") if part.strip()]
    if len(found) > MAX_MARKERS:
        raise DefinitionError(node, f"has more than {MAX_MARKERS} markers")
    return found


def world(lat: float, lon: float, zoom: int) -> tuple[float, float]:
    """Web Mercator pixel coordinates of a place at ``zoom`` (256 * 2^zoom wide)."""
    lat = max(-LATITUDE, min(LATITUDE, lat))
    scale = TILE * 2**zoom
    x = (lon + 180) / 360 * scale
    y = (1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * scale
    return x, y


class Plan:
    """The tiles a map needs and where each goes."""

    def __init__(self, node: Node) -> None:
        self.zoom = round(node.number("zoom", DEFAULT_ZOOM, minimum=0, maximum=19))
        self.size = size(node)
        self.center = _pair(node, node.attrs["center"], "center")
        self.markers = markers(node)
        cx, cy = world(*self.center, self.zoom)
        self.left, self.top = cx - self.size[0] / 2, cy - self.size[1] / 2
        count = 2**self.zoom
        self.tiles: list[tuple[int, int, int]] = []  # (x, y, x wrapped round the world)
        for ty in range(
            math.floor(self.top / TILE), math.floor((self.top + self.size[1]) / TILE) + 1
        ):
            if not 0 <= ty < count:
                continue  # above the north or below the south edge: left blank
            for tx in range(
                math.floor(self.left / TILE), math.floor((self.left + self.size[0]) / TILE) + 1
            ):
                self.tiles.append((tx, ty, tx % count))

    def url(self, template: str, tile: tuple[int, int, int]) -> str:
        _, ty, wrapped = tile
        return (
            template.replace("{z}", str(self.zoom))
            .replace("{x}", str(wrapped))
            .replace("{y}", str(ty))
        )


def draw(plan: Plan, tiles: dict[tuple[int, int, int], Path], attribution: str, out: Path) -> None:
    """Join the tiles, draw the markers and the attribution, save a PNG (a thread's work)."""
    width, height = plan.size
    picture = Image.new("RGB", (width, height), (200, 200, 200))
    for (tx, ty, _), path in tiles.items():
        with Image.open(path) as tile:
            tile.draft("RGB", (TILE, TILE))
            piece = tile.convert("RGB").resize((TILE, TILE))
        picture.paste(piece, (round(tx * TILE - plan.left), round(ty * TILE - plan.top)))
    pen = ImageDraw.Draw(picture)
    radius = max(6, round(height / 60))
    for lat, lon in plan.markers:
        x, y = world(lat, lon, plan.zoom)
        x, y = x - plan.left, y - plan.top
        pen.ellipse(
            (x - radius, y - 2 * radius, x + radius, y),
            fill=(220, 30, 30),
            outline=(255, 255, 255),
            width=2,
        )
        pen.polygon(
            [(x - radius / 2, y - radius / 2), (x + radius / 2, y - radius / 2), (x, y + radius)],
            fill=(220, 30, 30),
        )
    if attribution:
        font = ImageFont.truetype(FONT, max(10, round(height / 45)))
        box = pen.textbbox((0, 0), attribution, font=font)
        w, h = box[2] - box[0], box[3] - box[1]
        pad = max(3, h // 3)
        x0, y0 = width - w - 3 * pad, height - h - 3 * pad
        pen.rectangle((x0, y0, width, height), fill=(255, 255, 255))
        pen.text((x0 + pad, y0 + pad - box[1]), attribution, font=font, fill=(40, 40, 40))
    picture.save(out, "PNG")


def card(out: Path, size: tuple[int, int], color: tuple[int, int, int]) -> None:
    Image.new("RGB", size, color).save(out, "PNG")
