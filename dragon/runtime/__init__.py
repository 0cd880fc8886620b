"""Running things safely: tool subprocesses, the process pool and background loops."""
