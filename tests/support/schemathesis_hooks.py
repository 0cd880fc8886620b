"""What schemathesis needs to fuzz this server (loaded through ``SCHEMATHESIS_HOOKS``).

Resumable uploads take their bodies as ``application/offset+octet-stream`` (tus), a media
type schemathesis cannot generate by itself: any few bytes do.
"""

import schemathesis
from hypothesis import strategies as st

schemathesis.openapi.media_type("application/offset+octet-stream", st.binary(max_size=64))
