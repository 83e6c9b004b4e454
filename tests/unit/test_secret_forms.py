"""The leak checks' forms of a secret: each form is found where that encoding writes the value
down, so a leak in any of them fails the e2e and chart checks."""

from __future__ import annotations

import base64
import json
from urllib.parse import quote, urlencode

import pytest

from tests.support.secrets import leaks, secret_forms

# Characters that each encoding changes: "/" and "+" (base64, URLs), space and "&" (forms),
# quotes and backslash (JSON), non-ASCII (JSON's \u escapes).
SECRET = 'tok/en+ "q" \\ & é=9f3a'


def _basic_auth(prefix: str) -> str:
    return base64.b64encode(f"{prefix}:{SECRET}".encode()).decode()


@pytest.mark.parametrize(
    ("reason", "text"),
    [
        ("written as is", f"token={SECRET}"),
        ("a Secret's data", base64.b64encode(SECRET.encode()).decode()),
        ("basic auth, secret at byte offset 1", _basic_auth("u")),
        ("basic auth, secret at byte offset 2", _basic_auth("us")),
        ("basic auth, secret at byte offset 0", _basic_auth("use")),
        ("url-safe base64", base64.urlsafe_b64encode(SECRET.encode()).decode()),
        ("a query string", "https://api.example/x?" + urlencode({"token": SECRET})),
        ("a URL path", "/secrets/" + quote(SECRET)),
        ("a JSON log line", json.dumps({"msg": "calling", "token": SECRET})),
        ("JSON with non-ASCII kept", json.dumps({"token": SECRET}, ensure_ascii=False)),
        ("JSON inside JSON", json.dumps({"annotation": json.dumps({"token": SECRET})})),
    ],
)
def test_every_encoding_of_the_secret_is_found(reason: str, text: str) -> None:
    assert leaks({"token": SECRET}, {"text": text}), reason


def test_text_without_the_secret_has_no_leak() -> None:
    text = json.dumps({"token": "another value", "b64": base64.b64encode(b"other").decode()})
    assert leaks({"token": SECRET}, {"log": text}) == []


def test_forms_are_distinct_and_name_where_they_were_found() -> None:
    forms = secret_forms(SECRET)
    assert len(set(forms.values())) == len(forms)
    assert leaks({"token": SECRET}, {"the log": SECRET}) == ["token as plain in the log"]
