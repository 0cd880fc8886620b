"""SXML, the video.create definition language, rendered with Pillow and ffmpeg.

The pipeline (``render.create`` runs it for ``dragon/tasks/video_create.py``):

    parse.py     defusedxml SAX -> ``model.Node`` tree, checked; widgets.py rewrites the
                 director.theme dialect into core SXML
    timing.py    natural durations bottom-up, assigned begin/duration top-down
    beatsync.py  sync="beats": cuts snapped to the music's beats, then timed again
    assets.py    one Pillow job per picture (stills.py) and text (text.py)
    picture.py   the tree as one ffmpeg filtergraph of layers (filtergraph.py plumbing,
                 layout.py placement boxes, transitions.py xfade looks, motion.py
                 animators)
    sound.py     every audible clip on one timeline, mixed (ducking.py: duck-others)
    segments.py  windows bounding a graph's memory for very long movies
    profiles.py  output sizes, rates and bitrates

Where this departs from a literal reading of SXML and why (docs/sxml.md):

- One filtergraph for the whole movie rather than one intermediate file per top-level
  item: no generation loss, no concat seams, and one ffmpeg start. Long movies whose
  inputs would not fit in memory are cut into time windows (``segments.py``) and joined
  without re-encoding, which is where per-item intermediate files would pay off.
- Text is drawn by Pillow into transparent PNGs instead of ``drawtext`` (``text.py``
  explains: fitting a zone needs measurements; drawn once, not per frame).
- Pictures are decoded by Pillow, never by ffmpeg, and handed over as our own JPEG or PNG
  files (``stills.py``); a bare image or video in a sequence or stack is accepted as
  ``<effect type="none">``.
- Transitions without an ffmpeg 5.1 ``xfade`` built-in are ``xfade`` expressions of our
  own (``transitions.py``); sound crossfades are per-clip fades (``sound.py``).
- ``antialias`` supersamples text and, from 2 up, kenburns sources at twice the frame.
"""
