"""The router's one-pass header scan gives the model server exactly what the dict path gives.

The prediction path builds the forwarded header lines straight from the ASGI scope (no dict
per request); the other forwarded routes build them from `_client_headers`. Both must forward
the same headers, with X-Client-Id defaulting to the caller's address.
"""

from __future__ import annotations

from typing import Any

import pytest

from mlops_lab.canary.router import _client_headers, _header_block, _scan
from mlops_lab.canary.weights import CARD_ID_HEADER

SCOPES: list[dict[str, Any]] = [
    {"headers": [(b"content-type", b"application/json")], "client": ("10.1.2.3", 5555)},
    {"headers": [(b"x-client-id", b"acme"), (b"accept", b"*/*")], "client": ("10.1.2.3", 1)},
    {
        "headers": [
            (b"host", b"router:8000"),
            (b"content-type", b"application/json"),
            (b"x-request-id", b"r-1"),
            (b"x-card-id", b"card-9"),
            (b"user-agent", b"curl"),
            (b"authorization", b"Bearer secret"),
        ],
        "client": ("127.0.0.1", 40000),
    },
    {"headers": [(b"x-request-id", b"r-2")], "client": None},
]


@pytest.mark.parametrize("scope", SCOPES)
def test_the_scan_forwards_what_the_dict_path_forwards(scope: dict[str, Any]) -> None:
    block, _, request_id = _scan(scope)
    assert block == _header_block(_client_headers(scope))
    assert request_id == _client_headers(scope).get("x-request-id")
    assert b"authorization" not in block and CARD_ID_HEADER.encode() not in block


def test_the_card_id_header_is_read_when_present_and_usable() -> None:
    def card(value: bytes) -> str | None:
        return _scan({"headers": [(CARD_ID_HEADER.encode(), value)], "client": None})[1]

    assert card(b"card-9") == "card-9"
    assert card("karte-\u00e9".encode()) == "karte-\u00e9"  # as the body's UTF-8 card_id would read
    assert card(b"") is None  # empty: the body decides
    assert card(b"\xff\xfe") is None  # not UTF-8: the body decides
    assert _scan({"headers": [], "client": None})[1] is None
