"""The HTTP server: the aiohttp application with its routes and lifecycle, the access log."""
