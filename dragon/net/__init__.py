"""Untrusted input from the network: the guarded fetcher, the URL policy and content sniffing."""
