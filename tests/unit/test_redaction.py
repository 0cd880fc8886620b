"""Credentials are masked however they are spelled; what is not a credential stays readable."""

import logging
import sys

import pytest

from dragon.web.redaction import RedactingFormatter, redact_text, redact_url

SECRET = "GX3XTFL76ZXC6XP62USPH7FZCQ"


@pytest.mark.parametrize(
    "query",
    [
        "secret=",
        "%73ecret=",
        "sec%72et=",
        "api%5Fkey=",
        "x=1;secret=",
        "%20secret=",
        "SECRET=",
        "Api-Key=",
        "webhook_secret=",
        "X-Amz-Signature=",
        "access_token=",
    ],
)
def test_credential_parameters_are_masked_after_decoding(query):
    url = f"/v2/status?tasks=ABC&{query}{SECRET}&details=1"
    for redacted in (redact_url(url), redact_text(f"GET {url} HTTP/1.1")):
        assert SECRET not in redacted
        assert "tasks=ABC" in redacted and "details=1" in redacted


def test_headers_tokens_and_webhook_secrets_are_masked_in_free_text():
    text = (
        f"Invalid header value char: b'Authorization: Secret {SECRET}\\x00'\n"
        f"headers {{'Authorization': 'Api-Key abcdefgh1234'}} Bearer eyJhbGciOiJIUzI1NiJ9\n"
        "webhook whsec_u3Jw0tV6U04WYRxbc+Dv04yPBT796Qqg"
    )
    redacted = redact_text(text)
    for credential in (SECRET, "abcdefgh1234", "eyJhbGciOiJIUzI1NiJ9", "u3Jw0tV6U04W"):
        assert credential not in redacted, redacted


def test_ordinary_text_is_left_alone():
    text = "credentials are missing: pass a secret key or an api key; task ABC ?tasks=ABC&x=1"
    assert redact_text(text) == text
    assert redact_url("/v2/status?tasks=ABC,DEF") == "/v2/status?tasks=ABC,DEF"


def test_the_formatter_masks_tracebacks_too():
    try:
        raise ValueError(f"bad https://cdn.example.com/?token={SECRET}")
    except ValueError:
        record = logging.LogRecord(
            "x", logging.ERROR, __file__, 1, "failed", None, exc_info=sys.exc_info()
        )
    out = RedactingFormatter("%(message)s").format(record)
    assert "Traceback" in out and "ValueError" in out and SECRET not in out
