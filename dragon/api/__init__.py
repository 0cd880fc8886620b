"""The HTTP plumbing the handlers share that is not a handler itself.

``state`` (everything a handler may reach, typed), ``request`` (reading requests the way
Dragon clients send them) and ``openapi`` (the API description, built from what each
handler declares beside itself, over the answer shapes in ``wire``). It sits between
``dragon.handlers`` and ``dragon.engine``: handlers and the web application import it, and
it imports nothing of HTTP's upper layers, so a handler module never imports another one
just to read a request.
"""
