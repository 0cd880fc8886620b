"""The Python client of a dragon server: ``Client`` (blocking) and ``AsyncClient`` (asyncio).

It talks HTTP only (httpx) and imports nothing of the server, so it works against any
dragon server, local or remote::

    from dragon.client import Client

    with Client("http://127.0.0.1:8080", secret="...") as client:
        status = client.run({"task_name": "image.thumb", "url": "...", "width": 200})
        # A chain: the thumbnail of the conversion, read from the server's storage.
        convert, thumb = client.create(
            [{"task_name": "video.convert", "url": "...", "width": 640},
             {"task_name": "video.thumb", "url": output_of(0)}],
            block=True,
        )

``Client()`` alone finds the server and secret as the commands do (``config.py``:
``DRAGON_URL``/``DRAGON_SECRET``, then the file ``dragon login`` writes). ``docs/client.md``
shows it in use, and the commands built on it (``commands.py``):
``dragon run|status|cancel|download|upload|events|tasks|storage|create-file|login``.
"""

from dragon.client.asynchronous import AsyncClient
from dragon.client.sync import Client
from dragon.client.tus import Upload
from dragon.client.wire import DragonError, output_of

__all__ = ["AsyncClient", "Client", "DragonError", "Upload", "output_of"]
