"""The picture of a timed SXML tree as ffmpeg filters: each element becomes a ``Layer``.

Composition follows the tree (docs/sxml.md):

- an ``effect`` is its media filling the frame: a still from our own picture file
  (``stills.py``), decoded once and repeated by ``loop`` (cheaper than ``-loop 1``, which
  decodes the file for every frame) or zoomed by ``zoompan`` for kenburns-like effects; a
  video trimmed, retimed and scaled; or a solid colour. A multi-media effect joins its
  media like a sequence, with short internal crossfades;
- a ``stack`` draws its children in document order: the first one is the base when it
  covers the whole frame for the whole stack (the common case costs no compositing),
  later ones are ``overlay``-ed at their position, delayed with ``setpts``;
- a ``sequence`` joins full-frame items with ``concat`` (cuts) or ``xfade``
  (transitions); an item that is not full-frame is padded;
- ``text`` and ``overlay`` are small layers placed in the frame;
- ``filter type="alpha"`` fades a layer's opacity during the filter's window; the look
  filters (``looks.py``: blurs, frame, tint, colormap, threshold...) change its picture.

Each layer is built *opaque* (yuv420p, black where nothing is drawn) when nothing can show
through it, e.g. the base of the movie, and with transparency (yuva420p) only where
something below must remain visible, so the common slideshow never pays for alpha.

Where this departs from the obvious design: one graph for the whole movie instead of one
intermediate file per top-level item (no re-encoding, no concat demuxer); text is drawn by
Pillow (``text.py``), not ``drawtext``; transitions are ``xfade`` built-ins or our own
``custom`` expressions (``transitions.py``).
"""

from __future__ import annotations

import dataclasses
import math
import random
from collections.abc import Callable
from pathlib import Path

from dragon.media.probe import MediaInfo, input_args, path_input_args
from dragon.sxml import layout, looks, masks, motion, transitions
from dragon.sxml.assets import is_kenburns, media_mode
from dragon.sxml.filtergraph import Graph, Layer
from dragon.sxml.model import MULTI_EFFECTS, DefinitionError, Node
from dragon.sxml.stills import Raster

KENBURNS_ZOOM = 0.15
PANEL_DEGREES = 20.0
SLICES = 6  # ``slice``: vertical slices of the picture
SLICE_ARRIVAL = 0.6  # seconds each takes to slide in; they start 0.1 s apart
RECTANGLES = (3, 2)  # ``rectangles``: columns and rows of the picture's pieces
RECTANGLE_GROWTH = 0.5  # seconds each takes to grow from its centre; 0.1 s apart
EXPLOSION = (4, 3)  # ``explode``: columns and rows of the pieces
EXPLOSION_SECONDS = 0.8  # the last this many seconds of the picture
FLOWER_SECONDS = 1.0  # ``flower``: the petals open over the picture's first this many
FLOWER_REACH = 5.2  # how far (in half heights) the petals' tips reach: past the corners


class Picture:
    def __init__(
        self,
        graph: Graph,
        media: dict[str, MediaInfo],
        rasters: dict[int, Raster | None],
        warn: Callable[[str], None],
        decoder_guard: list[str],
        window: tuple[int, int] | None = None,
    ) -> None:
        self.g = graph
        self.window = window  # frames [first, end) to render; None: the whole movie
        self.decoder_guard = decoder_guard
        self.media = media
        self.rasters = rasters
        self.warn = warn
        self.full = (0, 0, graph.width, graph.height)

    def movie(self, body: Node) -> Layer:
        """The movie (or its window): opaque, full-frame, exactly the body's frames."""
        _, count = self.frames(body)
        return self.visual(body, opaque=True) or self.blank(count, alpha=False)

    # -- dispatch -------------------------------------------------------------------------
    def visual(self, node: Node, opaque: bool) -> Layer | None:
        _, count = self.frames(node)
        if count <= 0:
            return None
        build = {
            "body": self.sequence,
            "sequence": self.sequence,
            "stack": self.stack,
            "effect": self.effect,
            "text": self.text,
            "overlay": self.overlay,
        }.get(node.tag)
        layer = build(node, count, opaque) if build else None
        if layer is not None:
            layer = self.filtered(node, layer)
            layer = self.animate(node, layer)
            if opaque:
                layer = self.opaque(layer)
        return layer

    def frames(self, node: Node) -> tuple[int, int]:
        """First frame and frame count of ``node`` (inside the window, if any)."""
        first, end = self.g.frame(node.begin), self.g.frame(node.end)
        if self.window:
            first, end = max(first, self.window[0]), min(end, self.window[1])
        return first, max(0, end - first)

    def skipped(self, node: Node) -> int:
        """Frames of ``node`` before the window (an earlier segment rendered them)."""
        return max(0, self.window[0] - self.g.frame(node.begin)) if self.window else 0

    # -- containers -----------------------------------------------------------------------
    def stack(self, node: Node, count: int, opaque: bool) -> Layer:
        first, _ = self.frames(node)
        layers: list[tuple[int, Layer]] = []
        for child in node.content:
            child_first, child_count = self.frames(child)
            if child.tag == "audio" or child_count <= 0:
                continue
            covers = not layers and child_first == first and child_count >= count
            layer = self.visual(child, opaque=opaque and covers)
            if layer is not None:
                layers.append((child_first - first, layer))
        if layers and layers[0][0] == 0 and self.is_base(layers[0][1], count):
            base = layers.pop(0)[1]
        else:
            base = self.blank(count, alpha=not opaque)
        for offset, layer in layers:
            base = self.overlay_on(base, layer, offset)
        return self.through_camera(node, base)

    def sequence(self, node: Node, count: int, opaque: bool) -> Layer | None:
        pieces: list[tuple[Node, str | None]] = []
        pending: Node | None = None
        for child in node.children:
            if child.tag == "transition":
                pending = child
            elif child.is_content:
                name = None
                if pending is not None:
                    name, note = transitions.xfade(pending)
                    if note:
                        self.warn(note)
                pieces.append((child, name))
                pending = None
        return self.join(node, count, pieces, lambda n: self.visual(n, opaque), opaque)

    def join(
        self,
        parent: Node,
        count: int,
        pieces: list[tuple[Node, str | None]],
        render: Callable[[Node], Layer | None],
        opaque: bool,
    ) -> Layer | None:
        """Items back to back (``concat``), or overlapping through ``xfade``."""
        first, _ = self.frames(parent)
        parts: list[tuple[int, Layer, str | None]] = []
        for node, xfade in pieces:
            node_first, node_count = self.frames(node)
            if node_count <= 0:
                continue
            layer = render(node) or self.blank(node_count, alpha=not opaque)
            parts.append((node_first - first, self.full_frame(layer), xfade))
        if not parts:
            return None
        alpha = any(layer.alpha for _, layer, _ in parts)
        if alpha:
            parts = [(o, self.with_alpha(layer), x) for o, layer, x in parts]
        group: list[Layer] = []
        length = 0
        for offset, layer, xfade in parts:
            overlap = min(length - offset, layer.frames)
            if group and overlap > 0:
                joined = self.concat(group)
                drawn = transitions.drawn(xfade)
                if drawn:
                    label = self.drawn_transition(joined, layer, length, overlap, *drawn)
                else:
                    label = self.g.chain(
                        [joined.label, layer.label],
                        f"xfade={xfade or 'transition=fade'}:duration={self.g.seconds(overlap)}"
                        f":offset={self.g.seconds(length - overlap)}",
                    )
                length += layer.frames - overlap
                group = [dataclasses.replace(joined, label=label, frames=length)]
                continue
            if offset > length:
                group.append(self.blank(offset - length, alpha))
                length = offset
            group.append(layer)
            length += layer.frames
        return self.fit_length(self.concat(group), count, alpha)

    def drawn_transition(
        self, before: Layer, after: Layer, length: int, overlap: int, kind: str, direction: str
    ) -> str:
        """``before`` (``length`` frames) then ``after``, their ``overlap`` frames drawn by
        ``cards`` or ``warp`` (transitions that are not xfades)."""
        head, tail = self.cut(before.label, length - overlap, length)
        start, rest = self.cut(after.label, overlap, after.frames)
        assert tail is not None and start is not None  # 0 < overlap <= either's frames
        alpha = before.alpha or after.alpha
        if kind in transitions.CARDS:
            turn = self.cards(tail, start, overlap, kind, direction, alpha)
        elif kind == "square":
            turn = self.squares(tail, start, overlap)
        else:
            turn = self.warp(tail, start, overlap, kind, direction, alpha)
        parts = [label for label in (head, turn, rest) if label]
        if len(parts) == 1:
            return parts[0]
        return self.g.chain(
            parts, f"concat=n={len(parts)}:v=1:a=0,settb={self.g.time_base},setpts=N"
        )

    def cards(
        self, tail: str, start: str, overlap: int, kind: str, direction: str, alpha: bool
    ) -> str:
        """The outgoing ``tail`` and the incoming ``start`` (``overlap`` frames each) as
        cards turning in depth (``transitions.card_corners``: a cube's faces, a carousel's
        places...), on black or clear."""
        margin = 2  # clear pixels around each card: perspective repeats the edge outside
        w, h = self.g.width, self.g.height
        names = ("x0", "y0", "x1", "y1", "x2", "y2", "x3", "y3")
        corners, swap = transitions.card_corners(kind, direction, overlap, (w, h), margin)
        faces = []
        for face, points in zip((tail, start), corners, strict=True):
            warp = ":".join(f"{n}='{e}'" for n, e in zip(names, points, strict=True))
            faces.append(
                self.g.chain(
                    [face],
                    f"format=yuva420p,pad=iw+{2 * margin}:ih+{2 * margin}:{margin}:{margin}"
                    f":color=black@0,perspective={warp}:sense=destination:eval=frame",
                )
            )
        place = f"x=-{margin}:y=-{margin}:eof_action=pass"
        turn = self.blank(overlap, alpha).label
        if not swap:  # the incoming card is always the farther
            turn = self.g.chain([turn, faces[1]], f"overlay={place}")
            return self.g.chain([turn, faces[0]], f"overlay={place}")
        # Each card is behind the other while it is the farther: the outgoing one is drawn
        # on top in the first half of the turn, the incoming one in the second.
        half = overlap // 2
        incoming, incoming_last = self.g.split(faces[1], 2)
        turn = self.g.chain([turn, incoming], f"overlay={place}:enable='lt(n,{half})'")
        turn = self.g.chain([turn, faces[0]], f"overlay={place}")
        return self.g.chain([turn, incoming_last], f"overlay={place}:enable='gte(n,{half})'")

    def field(self, expr: str, fmt: str, frames: int, size: tuple[int, int]) -> str:
        """``frames`` frames of a ``size`` plane (``fmt``: ``gray`` or ``gray16le``) whose
        values ``expr`` gives (``geq``: ``N`` the frame, ``X``/``Y`` the pixel, ``W``/``H``
        the size it is worked out at): worked out at ``transitions.MAP_SCALE`` times
        smaller and scaled up, which suits smooth fields (maps of moves, soft masks)."""
        scale = transitions.MAP_SCALE
        small = f"{-(-size[0] // scale)}x{-(-size[1] // scale)}"
        return self.g.chain(
            [],
            f"nullsrc=s={small}:r={self.g.rate_text},trim=end_frame={frames},"
            f"format={fmt},geq=lum='{expr}',scale={size[0]}:{size[1]}:flags=bilinear",
        )

    def squares(self, tail: str, start: str, overlap: int) -> str:
        """``square``: the incoming ``start`` appears over the outgoing ``tail`` square by
        square (``transitions.SQUARES``), in a shuffled order that is the same every time."""
        cols, rows = transitions.SQUARES
        w, h = self.g.width, self.g.height
        order = list(range(cols * rows))
        random.Random(cols * rows).shuffle(order)
        pieces = self.g.split(start, cols * rows)
        out = tail
        for rank, cell in enumerate(order):
            # Even edges: 4:2:0 colour is stored per two pixels (odd edges leave seams).
            x0, x1 = (
                (cell % cols * w // cols) & ~1,
                min(w, ((cell % cols + 1) * w // cols + 1) & ~1),
            )
            y0, y1 = (
                (cell // cols * h // rows) & ~1,
                min(h, ((cell // cols + 1) * h // rows + 1) & ~1),
            )
            piece = self.g.chain([pieces[rank]], f"crop={x1 - x0}:{y1 - y0}:{x0}:{y0}")
            at = rank * overlap // (cols * rows)
            out = self.g.chain(
                [out, piece], f"overlay=x={x0}:y={y0}:enable='gte(n,{at})':eof_action=pass"
            )
        return out

    def warp(
        self, tail: str, start: str, overlap: int, kind: str, direction: str, alpha: bool
    ) -> str:
        """``waterdrop`` or ``swirl`` between the outgoing ``tail`` and the incoming
        ``start``: both read where ``transitions.warp_maps`` says (``remap``), then mixed
        (a crossfade, or the waterdrop's spreading share)."""
        w, h = self.g.width, self.g.height
        maps = transitions.warp_maps(kind, direction, overlap, (w, h))

        def field(expr: str, fmt: str, copies: int) -> list[str]:
            label = self.field(expr, fmt, overlap, (w, h))
            return self.g.split(label, copies) if copies > 1 else [label]

        planar = "gbrap" if alpha else "gbrp"  # remap and maskedmerge: no subsampled chroma
        xs, ys = field(maps[0], "gray16le", 2), field(maps[1], "gray16le", 2)
        sides = [
            self.g.chain(
                [self.g.chain([side], f"format={planar}"), xs[i], ys[i]], "remap=fill=black"
            )
            for i, side in enumerate((tail, start))
        ]
        back = "yuva420p" if alpha else "yuv420p"
        if len(maps) == 2:
            duration = self.g.seconds(overlap)
            return self.g.chain(
                sides, f"xfade=transition=fade:duration={duration}:offset=0,format={back}"
            )
        share = self.g.chain(field(maps[2], "gray", 1), f"format={planar}")
        return self.g.chain([*sides, share], f"maskedmerge,format={back}")

    def cut(self, label: str, at: int, frames: int) -> tuple[str | None, str | None]:
        """``label`` (``frames`` long) cut before frame ``at``: the parts (None if empty)."""
        if at <= 0:
            return None, label
        if at >= frames:
            return label, None
        first, second = self.g.split(label, 2)
        return (
            self.g.chain([first], f"trim=end_frame={at}"),
            self.g.chain([second], f"trim=start_frame={at},setpts=PTS-STARTPTS"),
        )

    # -- effects and media ----------------------------------------------------------------
    def effect(self, node: Node, count: int, opaque: bool) -> Layer | None:
        if node.attrs.get("type") in MULTI_EFFECTS:
            turn = transitions.between_items(node.attrs["type"])
            pieces = [(kid, turn if i else None) for i, kid in enumerate(node.content)]
            return self.join(
                node, count, pieces, lambda n: self.media_layer(node, n, opaque), opaque
            )
        return self.media_layer(node, node.content[0], opaque)

    def media_layer(self, effect: Node, media: Node, opaque: bool) -> Layer | None:
        """An effect's image, video or element, filling the frame."""
        _, count = self.frames(media)
        if count <= 0:
            return None
        if media.tag == "image" and not media.attrs.get("filename"):
            layer = self.color(media, self.full, count)
        elif media.tag == "image":
            raster = self.picture_raster(media)
            negative = effect.attrs.get("direction") == "negative"
            if media_mode(effect, media) == "pan":
                total = self.g.span(media.begin, media.end)[1]
                layer = self.panned(raster, count, total, self.skipped(media))
            elif is_kenburns(effect):
                total = self.g.span(media.begin, media.end)[1]
                layer = self.kenburns(raster, count, total, self.skipped(media), negative)
                if effect.attrs.get("type") == "panel":
                    layer = self.panel(media, layer)
                elif effect.attrs.get("type") == "slice":
                    layer = self.sliced(media, layer)
                elif effect.attrs.get("type") == "rectangles":
                    layer = self.rectangles(media, layer)
                elif effect.attrs.get("type") == "explode":
                    layer = self.exploded(media, layer)
                elif effect.attrs.get("type") == "flower":
                    layer = self.flower(media, layer)
            else:
                layer = self.still(raster, count)
        elif media.tag == "video":
            layer = self.video(media, count, self.full, media_mode(effect, media), effect)
        else:
            return self.visual(media, opaque)
        return self.filtered(media, layer)

    def picture_raster(self, image: Node) -> Raster:
        """The drawn file of a visible ``<image filename>``: ``assets.plan`` makes a job
        for each and ``render_still`` returns a picture or raises, so a miss is our bug."""
        raster = self.rasters.get(image.uid)
        if raster is None:
            raise LookupError(f"{image.where()}: its picture was not drawn")
        return raster

    def still(self, raster: Raster, count: int) -> Layer:
        """A picture of ours shown unchanged for ``count`` frames."""
        fmt = "yuva420p" if raster.alpha else "yuv420p"
        label = self.g.chain(
            [self.picture_input(raster)],
            f"format={fmt},loop=loop={count - 1}:size=1:start=0,setsar=1",
        )
        return Layer(label, count, raster.x, raster.y, raster.w, raster.h, raster.alpha)

    def kenburns(self, raster: Raster, count: int, total: int, skip: int, negative: bool) -> Layer:
        """Frames ``skip`` to ``skip + count`` of a ``total``-frame zoom into the picture."""
        step = f"{KENBURNS_ZOOM}*(on+{skip})/{total}"
        zoom = f"{1 + KENBURNS_ZOOM}-{step}" if negative else f"1+{step}"
        fmt = "yuva420p" if raster.alpha else "yuv420p"
        label = self.g.chain(
            [self.picture_input(raster)],
            f"format={fmt},zoompan=z='{zoom}':x='iw/2-(iw/zoom/2)'"
            f":y='ih/2-(ih/zoom/2)':d={count}:s={raster.w}x{raster.h}"
            f":fps={self.g.rate_text},setsar=1",
        )
        return Layer(label, count, raster.x, raster.y, raster.w, raster.h, raster.alpha)

    def panned(self, raster: Raster, count: int, total: int, skip: int) -> Layer:
        """Frames ``skip`` to ``skip + count`` of a ``total``-frame pan across a picture
        that covers its box and is wider (left to right) or taller (top to bottom)."""
        w, h = raster.w, raster.h
        across = f"(n+{skip})/{max(1, total - 1)}"
        fmt = "yuva420p" if raster.alpha else "yuv420p"
        label = self.g.chain(
            [self.picture_input(raster)],
            f"format={fmt},loop=loop={count - 1}:size=1:start=0,"
            f"crop=w='min(iw,ih*{w}/{h})':h='min(ih,iw*{h}/{w})'"
            f":x='(iw-ow)*{across}':y='(ih-oh)*{across}',scale={w}:{h},setsar=1",
        )
        return Layer(label, count, raster.x, raster.y, w, h, raster.alpha)

    def picture_input(self, raster: Raster) -> str:
        index = self.g.input(
            [
                "-framerate",
                self.g.rate_text,
                "-pattern_type",
                "none",
                *path_input_args(Path(raster.path), "image2"),
            ]
        )
        return f"{index}:v"

    def color(self, node: Node, box: layout.Box, count: int) -> Layer:
        rgba = node.color("color")
        if rgba is None:  # parse.py refuses an <image> with neither filename nor color
            raise DefinitionError(node, "needs a filename or a color")
        r, g, b, a = rgba
        x, y, w, h = box
        fmt = "yuva420p" if a < 255 else "yuv420p"
        label = self.g.chain(
            [],
            f"color=c=0x{r:02x}{g:02x}{b:02x}@{a / 255:.4f}:s={w}x{h}"
            f":r={self.g.rate_text},format={fmt},"
            f"trim=end_frame={count},setsar=1",
        )
        return Layer(label, count, x, y, w, h, a < 255)

    def video(
        self, node: Node, count: int, box: layout.Box, mode: str, parent: Node | None = None
    ) -> Layer:
        """A clip in ``box`` for ``count`` frames, at its ``speed`` from its ``skip``. With
        a ``motionInterpolate`` filter (on it or on its ``parent``), the frames the movie's
        rate needs between the clip's own are made by motion-compensated interpolation
        (ffmpeg's ``minterpolate``, costly) rather than repeated: slow motion flows."""
        info = self.media[node.attrs["filename"]]
        speed = node.number("speed", 1.0) or 1.0
        skip = (node.number("skip", 0.0) or 0.0) + self.skipped(node) * speed / float(self.g.rate)
        available = (info.duration or 0.0) - skip
        if available <= 0 or not info.display_size:
            self.warn(f"{node.where()}: nothing left to show after skip={skip:g}; drawn black")
            return self.blank(count, alpha=False, box=box)
        aspect = info.display_size[0] / info.display_size[1]
        if mode == "fit":
            box = layout.fit(box, aspect)
        x, y, w, h = box
        needed = min(available, (count + 2) / float(self.g.rate) * speed)
        index = self.g.input(
            ["-t", f"{needed:.6f}", *self.decoder_guard, *input_args(info, seek=skip or None)]
        )
        retime = "setpts=PTS-STARTPTS" if speed == 1 else f"setpts=(PTS-STARTPTS)/{speed:g}"
        if mode == "fill":
            scale = f"scale={w}:{h}:force_original_aspect_ratio=increase,crop={w}:{h}"
        else:
            scale = f"scale={w}:{h}"
        fmt = "yuva420p" if info.alpha else "yuv420p"
        rate = f"fps={self.g.rate_text}"
        if any(n.filters("motionInterpolate") for n in (node, parent) if n is not None):
            rate = (
                f"minterpolate=fps={self.g.rate_text}:mi_mode=mci:mc_mode=aobmc:vsbmc=1,"
                f"settb={self.g.time_base},setpts=N"  # its timestamps, frame by frame
            )
        label = self.g.chain(
            [f"{index}:v"],
            f"{retime},{rate},{scale},setsar=1,"
            f"format={fmt},tpad=stop=-1:stop_mode=clone,"
            f"trim=end_frame={count}",
        )
        return Layer(label, count, x, y, w, h, info.alpha)

    def text(self, node: Node, count: int, opaque: bool) -> Layer | None:
        raster = self.rasters.get(node.uid)
        return self.still(raster, count) if raster else None

    def overlay(self, node: Node, count: int, opaque: bool) -> Layer | None:
        media = node.content[0]
        if len(node.content) > 1:
            self.warn(f"{node.where()}: only its first element is drawn")
        spec = layout.placement(node.attrs)
        if media.tag == "image" and media.attrs.get("filename"):
            layer = self.still(self.picture_raster(media), count)
        elif media.tag == "image":
            layer = self.color(media, layout.place(spec, self.g.width, self.g.height), count)
        elif media.tag == "video":
            info = self.media[media.attrs["filename"]]
            size = info.display_size or (16, 9)
            box = layout.place(spec, self.g.width, self.g.height, size[0] / size[1])
            layer = self.video(media, count, box, media_mode(node, media), node)
        else:
            inner = self.visual(media, opaque=False)
            if inner is None:
                return None
            x, y, w, h = layout.place(spec, self.g.width, self.g.height)
            label = self.g.chain([self.full_frame(inner).label], f"scale={w}:{h}")
            return Layer(label, inner.frames, x, y, w, h, True)
        return self.filtered(media, layer)

    # -- motion -----------------------------------------------------------------------------
    @property
    def frame_of_t(self) -> str:
        """A stream's frame number from its time ``t`` (every stream here runs at the rate
        from pts 0; filters' own ``n`` counts frames already passed on, one ahead)."""
        return f"floor(t*{self.g.rate.numerator}/{self.g.rate.denominator}+0.5)"

    def animate(self, node: Node, layer: Layer) -> Layer:
        """``<animator>``s: turn and scale the layer per frame, and give it a ``Motion``
        that ``overlay_on`` places it by (``motion.py`` has the semantics)."""
        if not node.kids({"animator"}):
            return layer
        first, _ = self.frames(node)
        tracks = motion.tracks(
            node,
            (layer.x, layer.y, layer.w, layer.h),
            (self.g.width, self.g.height),
            self.g.frame,
            float(self.g.rate),
        )
        return self.moved(layer, tracks, first)

    def through_camera(self, stack: Node, layer: Layer) -> Layer:
        """A stack's ``<camera>`` animators: the camera moves, so the stack's picture moves
        the other way (``motion.seen_from``): a camera sliding left shows the picture
        going right, one turning about an axis shows it turned the other way."""
        cameras = [c for c in stack.kids({"camera"}) if c.kids({"animator"})]
        if not cameras:
            return layer
        first, _ = self.frames(stack)
        tracks = motion.tracks(
            cameras[0], self.full, (self.g.width, self.g.height), self.g.frame, float(self.g.rate)
        )
        return self.moved(layer, motion.seen_from(tracks), first)

    def moved(self, layer: Layer, tracks: motion.Tracks, first: int) -> Layer:
        """``layer`` turned and scaled per frame by ``tracks``, with the ``Motion`` that
        ``overlay_on`` places it by."""
        steps = []
        if tracks.tilt:
            steps += self.tilt_steps(tracks, first, layer.w, layer.h)[0]
        if tracks.turn:
            angle = motion.turn_expr(tracks, first, self.frame_of_t)
            steps.append(f"rotate=a='{angle}':c=black@0:ow='hypot(iw,ih)':oh=ow")
        if tracks.scales:
            sx = motion.scale_expr(tracks, tracks.sx, first, self.frame_of_t)
            sy = motion.scale_expr(tracks, tracks.sy, first, self.frame_of_t)
            steps.append(
                f"scale=w='max(2,trunc(iw*{sx}/2)*2)':h='max(2,trunc(ih*{sy}/2)*2)':eval=frame"
            )
        label, alpha = layer.label, layer.alpha
        if steps:
            label = self.g.chain([label], ",".join(([] if alpha else ["format=yuva420p"]) + steps))
            alpha = True
        centre = (layer.x + layer.w / 2, layer.y + layer.h / 2)
        focus = (self.g.width / 2, self.g.height / 2)
        moving = motion.Motion(
            centre, first, tuple(tracks.dx), tuple(tracks.dy), tuple(tracks.depth), focus
        )
        return dataclasses.replace(layer, label=label, alpha=alpha, motion=moving)

    def tilt_steps(
        self, tracks: motion.Tracks, first: int, w: int, h: int
    ) -> tuple[list[str], int, int]:
        """The filters that turn a ``w`` x ``h`` layer in depth (``tracks.tilt``), and the
        transparent margins they add on each side: the most its near side may grow
        (perspective repeats the edge's pixels outside the picture: they must be clear)."""
        grow = motion.MAX_TILT_SCALE - 1
        mx, my = round(w * grow / 2) + 2, round(h * grow / 2) + 2
        padded = (w + 2 * mx, h + 2 * my)  # the plane perspective turns
        corners = motion.tilt_corners(tracks, first, "in", padded, self.g.height)
        names = ("x0", "y0", "x1", "y1", "x2", "y2", "x3", "y3")
        warp = ":".join(f"{n}='{e}'" for n, e in zip(names, corners, strict=True))
        steps = [
            f"pad=iw+{2 * mx}:ih+{2 * my}:{mx}:{my}:color=black@0",
            f"perspective={warp}:sense=destination:eval=frame",
        ]
        return steps, mx, my

    def panel(self, media: Node, layer: Layer) -> Layer:
        """``effect type="panel"``: the picture as a panel turning in depth about its
        vertical axis, from 20 degrees one way to 20 the other over the media's time, eased
        (our reading of the name; it zooms as kenburns does meanwhile)."""
        a, b = (
            self.g.frame(media.begin),
            max(self.g.frame(media.end), self.g.frame(media.begin) + 1),
        )
        turn = math.radians(PANEL_DEGREES)
        tracks = motion.Tracks(tilt=[(a, b, turn, -turn, True)], tilt_axis=(0.0, 1.0, 0.0))
        first, _ = self.frames(media)
        steps, mx, my = self.tilt_steps(tracks, first, layer.w, layer.h)
        label = self.g.chain(
            [layer.label], ",".join(([] if layer.alpha else ["format=yuva420p"]) + steps)
        )
        return dataclasses.replace(
            layer,
            label=label,
            x=layer.x - mx,
            y=layer.y - my,
            w=layer.w + 2 * mx,
            h=layer.h + 2 * my,
            alpha=True,
        )

    def sliced(self, media: Node, layer: Layer) -> Layer:
        """``effect type="slice"``: the picture arrives in vertical slices, sliding in from
        above and below in turn, one after the other, over its first second; then it is
        whole (our reading of the name; it zooms as kenburns does meanwhile)."""
        base = self.blank(layer.frames, alpha=False)
        skipped = self.g.seconds(self.skipped(media))  # an earlier window drew its start
        width = layer.w // SLICES
        for i, part in enumerate(self.g.split(layer.label, SLICES)):
            x0 = i * width
            w = width if i < SLICES - 1 else layer.w - x0
            strip = self.g.chain([part], f"crop={w}:{layer.h}:{x0}:0")
            start = 0.1 * i
            away = -layer.h if i % 2 == 0 else layer.h
            y = f"{layer.y}+{away}*(1-clip((t+{skipped}-{start})/{SLICE_ARRIVAL},0,1))"
            base = dataclasses.replace(
                base,
                label=self.g.chain(
                    [base.label, strip],
                    f"overlay=x={layer.x + x0}:y='{y}':eval=frame:eof_action=pass",
                ),
            )
        return base

    def flower(self, media: Node, layer: Layer) -> Layer:
        """``effect type="flower"``: the picture opens like a flower, shown through six
        petals that grow and turn from its centre over its first ``FLOWER_SECONDS``, then
        whole (our reading of the name; it zooms as kenburns does meanwhile)."""
        w, h = layer.w, layer.h
        rate = float(self.g.rate)
        grown = f"clip((N+{self.skipped(media)})/{rate * FLOWER_SECONDS:g},0,1)"
        dx = f"(((X+0.5)*{w}/W-0.5-{(w - 1) / 2:g})/{h / 2:g})"  # in half heights
        dy = f"(((Y+0.5)*{h}/H-0.5-{(h - 1) / 2:g})/{h / 2:g})"
        petals = f"(0.7+0.3*cos(6*(atan2({dy},{dx})+{grown})))"
        reach = f"({FLOWER_REACH}*{grown}*{grown})"
        mask = self.field(
            f"255*clip(({reach}*{petals}-hypot({dx},{dy}))/0.15,0,1)", "gray", layer.frames, (w, h)
        )
        return self.through(layer, mask, "")

    def rectangles(self, media: Node, layer: Layer) -> Layer:
        """``effect type="rectangles"``: the picture appears as rectangles that grow from
        their centres, one after the other, over its first second (our reading of the name
        and of ``filterType="grow"``; it zooms as kenburns does meanwhile)."""
        skipped = self.g.seconds(self.skipped(media))

        def size(i: int) -> str:
            return f"clip((t+{skipped}-{0.1 * i:g})/{RECTANGLE_GROWTH},0.02,1)"

        return self.pieces(layer, RECTANGLES, size, lambda i, cx, cy: (f"{cx:g}", f"{cy:g}"))

    def exploded(self, media: Node, layer: Layer) -> Layer:
        """``effect type="explode"``: whole until its last 0.8 s, then the picture breaks
        into a 4 by 3 grid of pieces that fly away from the frame's centre and shrink,
        faster and faster (our reading of the name; it zooms as kenburns does before)."""
        skipped = self.g.seconds(self.skipped(media))
        length = self.g.seconds(self.g.span(media.begin, media.end)[1])
        p = f"pow(clip((t+{skipped}-{length}+{EXPLOSION_SECONDS})/{EXPLOSION_SECONDS},0,1),2)"
        half_w, half_h = self.g.width / 2, self.g.height / 2

        def centre(i: int, cx: float, cy: float) -> tuple[str, str]:
            dx, dy = 1.5 * (cx - half_w), 1.5 * (cy - half_h)
            return f"{cx:g}+{dx:g}*{p}", f"{cy:g}+{dy:g}*{p}"

        return self.pieces(layer, EXPLOSION, lambda i: f"(1-0.7*{p})", centre)

    def pieces(
        self,
        layer: Layer,
        grid: tuple[int, int],
        size: Callable[[int], str],
        centre: Callable[[int, float, float], tuple[str, str]],
    ) -> Layer:
        """``layer`` cut into a ``grid`` (columns, rows) of pieces, drawn on black: piece
        ``i`` (row by row) scaled by the expression ``size(i)`` about the centre that
        ``centre(i, cx, cy)`` gives (expressions of ``t``; ``cx, cy``: where it was)."""
        columns, rows = grid
        base = self.blank(layer.frames, alpha=False)
        w, h = layer.w // columns, layer.h // rows
        for i, part in enumerate(self.g.split(layer.label, columns * rows)):
            col, row = i % columns, i // columns
            x0, y0 = col * w, row * h
            pw = w if col < columns - 1 else layer.w - x0
            ph = h if row < rows - 1 else layer.h - y0
            k = size(i)
            piece = self.g.chain(
                [part],
                f"crop={pw}:{ph}:{x0}:{y0},"
                f"scale=w='max(2,trunc({pw}*{k}/2)*2)':h='max(2,trunc({ph}*{k}/2)*2)'"
                ":eval=frame",
            )
            x, y = centre(i, layer.x + x0 + pw / 2, layer.y + y0 + ph / 2)
            place = f"x='{x}-overlay_w/2':y='{y}-overlay_h/2':eval=frame"
            base = dataclasses.replace(
                base,
                label=self.g.chain([base.label, piece], f"overlay={place}:eof_action=pass"),
            )
        return base

    # -- filters ----------------------------------------------------------------------------
    def filtered(self, node: Node, layer: Layer) -> Layer:
        """``node``'s layer with its filters: its looks (``looks.py``), those that read a
        picture (``masks.py``), then its opacity."""
        layer = self.look_filters(node, layer)
        for f in node.children:
            if f.tag == "filter" and f.attrs.get("type") in masks.PICTURED and f.content:
                layer = self.pictured(node, f, layer)
        return self.alpha_filters(node, layer)

    def pictured(self, node: Node, f: Node, layer: Layer) -> Layer:
        """``layer`` with the filter ``f`` that reads its picture (stretched over the
        layer, held for its frames), during ``f``'s window."""
        first, count = self.frames(f)
        if count <= 0:
            return layer
        node_first, _ = self.frames(node)
        start = self.g.seconds(max(0, first - node_first))
        end = self.g.seconds(first - node_first + count)
        window = f"enable='between(t,{start},{end})'"
        held = f"loop=loop={layer.frames - 1}:size=1:start=0,setsar=1"
        picture = self.g.chain(
            [self.picture_input(self.picture_raster(f.content[0]))], f"scale={layer.w}:{layer.h}"
        )
        kind = f.attrs["type"]
        if kind == "displacement":
            return self.displaced(f, layer, picture, held, window)
        if kind == "maskedBlur":
            planar = "gbrap" if layer.alpha else "gbrp"  # maskedmerge: alike, full planes
            mask = self.g.chain([picture], f"format=gray,{held},format={planar}")
            sharp, soft = self.g.split(self.g.chain([layer.label], f"format={planar}"), 2)
            sigma = round(max(0.1, masks.number(f, "radius") * self.g.height), 2)
            soft = self.g.chain([soft], f"gblur=sigma={sigma}")
            back = "yuva420p" if layer.alpha else "yuv420p"
            label = self.g.chain([sharp, soft, mask], f"maskedmerge={window},format={back}")
            return dataclasses.replace(layer, label=label)
        plane = self.g.chain([picture], ",".join([*masks.plane_steps(f), held]))
        return self.through(layer, plane, window)

    def through(self, layer: Layer, plane: str, window: str) -> Layer:
        """``layer`` whose opacity is the grey ``plane`` (white: opaque), with its own
        transparency too (the lower of the two); only in ``window`` (``enable=...``) if
        one is given."""
        if layer.alpha:
            shown, own = self.g.split(layer.label, 2)
            plane = self.g.chain(
                [self.g.chain([own], "alphaextract"), plane], "blend=all_mode=darken"
            )
        else:
            shown = self.g.chain([layer.label], "format=yuva420p")
        label = self.g.chain([shown, plane], f"alphamerge={window}" if window else "alphamerge")
        return dataclasses.replace(layer, label=label, alpha=True)

    def displaced(self, f: Node, layer: Layer, picture: str, held: str, window: str) -> Layer:
        """``displacement``: ``layer`` read from where the picture's red and green say
        (``masks.displacement_maps``)."""
        planar = "gbrap" if layer.alpha else "gbrp"  # displace: alike, full planes
        source = self.g.split(self.g.chain([picture], "format=rgba"), 2)
        xs, ys = (
            self.g.chain([part], f"{step},{held},format={planar}")
            for part, step in zip(source, masks.displacement_maps(f, self.g.height), strict=True)
        )
        back = "yuva420p" if layer.alpha else "yuv420p"
        label = self.g.chain(
            [self.g.chain([layer.label], f"format={planar}"), xs, ys],
            f"displace=edge=smear:{window},format={back}",
        )
        return dataclasses.replace(layer, label=label)

    def look_filters(self, node: Node, layer: Layer) -> Layer:
        """Each look filter of ``node`` for the filter's window (within the node's)."""
        found = [
            f
            for f in node.children
            if f.tag == "filter" and f.attrs.get("type") in looks.LOOKS and self.frames(f)[1] > 0
        ]
        if not found:
            return layer
        node_first, _ = self.frames(node)
        chain = []
        for look in found:
            first, count = self.frames(look)
            start = self.g.seconds(max(0, first - node_first))
            end = self.g.seconds(first - node_first + count)
            enable = f"enable='between(t,{start},{end})'"
            chain += [
                f"{step}:{enable}" if looks.timed(step) else step
                for step in looks.steps(look, self.g.height)
            ]
        if not chain:  # looks that draw nothing (``identity``)
            return layer
        alpha = layer.alpha or any(f.attrs["type"] in looks.CLEARING for f in found)
        label = self.g.chain([layer.label], ",".join(chain))
        return dataclasses.replace(layer, label=label, alpha=alpha)

    def alpha_filters(self, node: Node, layer: Layer) -> Layer:
        """``filter type="alpha"``: opacity from alphaStart to alphaEnd in its window."""
        fades = [f for f in node.filters("alpha") if self.frames(f)[1] > 0]
        if not fades:
            return layer
        node_first, _ = self.frames(node)
        steps = [] if layer.alpha else ["format=yuva420p"]
        for fade in fades:
            # Windows never cut a fade (segments.py), so it starts inside this one.
            fade_first, fade_count = self.g.span(fade.begin, fade.end)
            start = self.g.seconds(max(0, fade_first - node_first))
            end = self.g.seconds(fade_first - node_first + fade_count)
            enable = f"enable='between(t,{start},{end})'"
            low = fade.number("alphaStart", 1.0)
            high = fade.number("alphaEnd", 1.0)
            if low != high:
                kind = "in" if high > low else "out"
                steps.append(
                    f"fade=t={kind}:st={start}:d={self.g.seconds(fade_count)}:alpha=1:{enable}"
                )
                if min(low, high) > 0:
                    self.warn(f"{fade.where()}: fades from 0, not from {min(low, high):g}")
            peak = max(low, high)
            if peak < 1:
                steps.append(f"lut=a='val*{peak:.4f}':{enable}")
        label = self.g.chain([layer.label], ",".join(steps))
        return dataclasses.replace(layer, label=label, alpha=True)

    def is_base(self, layer: Layer, count: int) -> bool:
        return (
            self.is_full(layer)
            and not layer.alpha
            and layer.motion is None
            and layer.frames >= count
        )

    def is_full(self, layer: Layer) -> bool:
        return (layer.x, layer.y, layer.w, layer.h) == self.full

    def opaque(self, layer: Layer) -> Layer:
        """``layer`` on black: full-frame, without transparency."""
        if layer.motion is not None:
            return self.overlay_on(self.blank(layer.frames, alpha=False), layer, 0)
        if not layer.alpha and self.is_full(layer):
            return layer
        if not layer.alpha:
            label = self.g.chain(
                [layer.label], f"pad={self.g.width}:{self.g.height}:{layer.x}:{layer.y}:color=black"
            )
            return Layer(label, layer.frames, *self.full, False)
        return self.overlay_on(self.blank(layer.frames, alpha=False), layer, 0)

    def full_frame(self, layer: Layer) -> Layer:
        """``layer`` padded to the whole frame with transparency."""
        if layer.motion is not None:
            return self.overlay_on(self.blank(layer.frames, alpha=True), layer, 0)
        if self.is_full(layer):
            return layer
        label = self.g.chain(
            [layer.label],
            f"format=yuva420p,pad={self.g.width}:{self.g.height}:{layer.x}:{layer.y}:color=black@0",
        )
        return Layer(label, layer.frames, *self.full, True)

    def with_alpha(self, layer: Layer) -> Layer:
        if layer.alpha:
            return layer
        return dataclasses.replace(
            layer, label=self.g.chain([layer.label], "format=yuva420p"), alpha=True
        )

    def overlay_on(self, base: Layer, layer: Layer, offset: int) -> Layer:
        source = layer.label
        if offset:
            source = self.g.chain([source], f"setpts=PTS+{offset}")
        if layer.motion is None:
            place = f"x={layer.x}:y={layer.y}:eval=init"
        else:  # the layer's own frame number: it starts ``offset`` frames into the base
            frame = f"({self.frame_of_t}-{offset})"
            place = f"x='{layer.motion.x(frame)}':y='{layer.motion.y(frame)}':eval=frame"
        label = self.g.chain([base.label, source], f"overlay={place}:eof_action=pass")
        return dataclasses.replace(base, label=label)

    def blank(self, count: int, alpha: bool, box: layout.Box | None = None) -> Layer:
        x, y, w, h = box or self.full
        color, fmt = ("black@0", "yuva420p") if alpha else ("black", "yuv420p")
        label = self.g.chain(
            [],
            f"color=c={color}:s={w}x{h}:r={self.g.rate_text},"
            f"format={fmt},trim=end_frame={count},setsar=1",
        )
        return Layer(label, count, x, y, w, h, alpha)

    def concat(self, group: list[Layer]) -> Layer:
        if len(group) == 1:
            return group[0]
        # setpts=N: concat times a one-frame segment as lasting no time, and the encoder
        # then drops the frames that share a timestamp; every part runs at the rate.
        label = self.g.chain(
            [layer.label for layer in group],
            f"concat=n={len(group)}:v=1:a=0,settb={self.g.time_base},setpts=N",
        )
        return dataclasses.replace(group[0], label=label, frames=sum(g.frames for g in group))

    def fit_length(self, layer: Layer, count: int, alpha: bool) -> Layer:
        """Trim or pad (black, or transparent) ``layer`` to exactly ``count`` frames."""
        if layer.frames < count:
            # concat, not tpad: after xfade, ffmpeg 5.1's tpad restarts the timestamps.
            return self.concat([layer, self.blank(count - layer.frames, alpha)])
        if layer.frames > count:
            label = self.g.chain([layer.label], f"trim=end_frame={count}")
            return dataclasses.replace(layer, label=label, frames=count)
        return layer
