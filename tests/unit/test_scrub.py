"""``dragon.net.scrub``: secrets by value (cut texts included) and by shape."""

from dragon.net import scrub

TOKEN = "ya29.a0AfB_" + "x1y2z3" * 30


def test_a_cut_text_shows_no_start_of_a_secret():
    text = "." * 280 + f" failed for Bearer {TOKEN} and more"
    out = scrub.scrub(text, [TOKEN], 300)
    assert "ya29" not in out and "x1y2" not in out
    assert scrub.scrub("." * 290 + "ya29.a0AfB", [TOKEN], 300).endswith("." + scrub.MASK)


def test_credential_shapes_are_masked():
    text = (
        'key=AIzaSyD123 developer_key=abcdefgh {"access_token": "EAAB123456"} '
        "https://b.s3.amazonaws.com/o?X-Amz-Credential=AKIA%2F1&X-Amz-Signature=5d67&a=1 "
        "bytes 0-100 of 200, task_key=ABC"
    )
    out = scrub.scrub(text)
    for secret in ("AIzaSyD123", "abcdefgh", "EAAB123456", "AKIA", "5d67"):
        assert secret not in out, out
    assert "bytes 0-100 of 200" in out and "&a=1" in out and "task_key=ABC" in out


def test_a_tasks_secrets_are_its_credentials_and_its_signed_upload_query():
    params = {
        "url": "https://h/x.jpg?X-Amz-Signature=abcd1234&w=1",
        "access_token": "tok-12345",
        "api_key": "-",
        "task_store": {"type": "s3_signed", "url": "https://s/o?AWSAccessKeyId=A&Policy=P"},
    }
    secrets = scrub.task_secrets(params)
    assert {"abcd1234", "tok-12345", "AWSAccessKeyId=A&Policy=P"} <= set(secrets)
    error = scrub.task_error("PUT https://s/o?AWSAccessKeyId=A&Policy=P: tok-12345 - 1-2", params)
    assert error == "PUT https://s/o?***: *** - 1-2"
