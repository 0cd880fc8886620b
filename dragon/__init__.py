"""dragon: a self-hosted media tasks server that speaks the Dragon tasks API."""

__version__ = "0.1.0"
