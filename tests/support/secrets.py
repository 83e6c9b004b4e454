"""The forms a secret value takes when something writes it down: plain, base64 (Secret data,
basic auth), URL-encoded (query strings, form bodies), JSON-escaped (logs, API objects, and
JSON inside JSON such as kubectl's last-applied annotation). Leak checks look for all of them."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from urllib.parse import quote, quote_plus

B64_GROUP = 3  # bytes per four base64 characters


def _base64_cores(value: str) -> dict[str, str]:
    """The base64 characters that depend on ``value`` alone, at each of the three byte offsets
    it may start at inside a longer encoded string ("user:" + token in basic auth)."""
    raw = value.encode()
    cores: dict[str, str] = {}
    for offset in range(B64_GROUP):
        encoded = base64.b64encode(b"\0" * offset + raw).decode()
        # Characters carrying a bit of the filler before, or of whatever follows, are dropped.
        start, end = -(-offset * 8 // 6), (offset + len(raw)) * 8 // 6
        core = encoded[start:end]
        cores[f"base64 at offset {offset}"] = core
        cores[f"url-safe base64 at offset {offset}"] = core.replace("+", "-").replace("/", "_")
    return cores


def secret_forms(value: str) -> dict[str, str]:
    """Every form of ``value`` worth looking for, by name (forms equal to another dropped)."""
    json_escaped = json.dumps(value)[1:-1]
    candidates = {
        "plain": value,
        **_base64_cores(value),
        "URL-encoded (quote)": quote(value, safe=""),
        "URL-encoded (quote, / kept)": quote(value),
        "URL-encoded (quote_plus)": quote_plus(value),
        "JSON-escaped": json_escaped,
        "JSON-escaped, non-ASCII kept": json.dumps(value, ensure_ascii=False)[1:-1],
        "JSON-escaped twice": json.dumps(json_escaped)[1:-1],
    }
    forms: dict[str, str] = {}
    for name, form in candidates.items():
        if form not in forms.values():
            forms[name] = form
    return forms


def leaks(secrets: Mapping[str, str], places: Mapping[str, str]) -> list[str]:
    """``"<secret> as <form> in <place>"`` for each form of each secret found in a place."""
    return [
        f"{label} as {form_name} in {where}"
        for label, value in secrets.items()
        for form_name, form in secret_forms(value).items()
        for where, text in places.items()
        if form in text
    ]
