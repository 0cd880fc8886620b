"""Clients of the video platforms' upload protocols: YouTube, Vimeo and Facebook.

One module per platform (``youtube``, ``vimeo``, ``facebook``) speaks that platform's
documented resumable protocol; ``transfer`` holds what they share: the HTTP session to the
operator's endpoints, file ranges streamed from disk a piece at a time (memory stays flat
whatever the size), retries with backoff, and the error codes a user can act on
(``upload_unauthorized``, ``upload_quota_exceeded``, ``upload_failed``).

The endpoints come from the settings (``DRAGON_YOUTUBE_API_URL`` and friends), not from
users, so they do not go through the guarded fetcher's address policy. Tokens and secrets
travel in headers or form bodies (YouTube's developer key in the ``key`` query parameter,
as its API wants), never in messages: every text a platform sends back is scrubbed of them
before it reaches an error, and aiohttp's exception texts (which name URLs) are not used.
"""
