"""The resume token of a multiplexed connection: every followed stream's position in one id.

Opaque to the page, URL-safe (``[A-Za-z0-9_-]`` after a version prefix), so
it travels as ``Last-Event-ID`` or ``?after=``. Inside: for each stream, a
short digest of its workflow id (so the token stays short whatever the ids)
and its position ``(chain, next offset)``. A stream the token does not name
starts at its latest chain; a name the connection does not follow is ignored,
so a page that changes its follow set keeps the positions it had.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Mapping

from services.web.chain import Position

_VERSION = "1."
_MAX_CHARS = 8192
_CHAIN = re.compile(r"^[0-9A-Za-z-]{1,64}$")
_MAX_OFFSET = 10**15


def key(workflow_id: str) -> str:
    """The token's name for a stream: a digest of its workflow id."""
    return base64.urlsafe_b64encode(hashlib.sha256(workflow_id.encode()).digest()[:9]).decode()


def encode(positions: Mapping[str, Position | None]) -> str:
    """The token for these streams' positions (streams with none are left out)."""
    body = {key(wid): [p.chain, p.offset] for wid, p in positions.items() if p is not None}
    raw = json.dumps(body, separators=(",", ":")).encode()
    return _VERSION + base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode(token: str, source: str) -> dict[str, Position]:
    """The positions in ``token``, by stream key; ValueError naming ``source`` if malformed."""
    problem = _decode(token.strip())
    if isinstance(problem, str):
        raise ValueError(
            f"{source} {token[:80]!r} is not a resume token of this server ({problem}); "
            "send back the id of an event this server sent, or leave it out to start afresh"
        )
    return problem


def _decode(token: str) -> dict[str, Position] | str:
    if len(token) > _MAX_CHARS or not token.startswith(_VERSION):
        return f"expected {_VERSION!r} and at most {_MAX_CHARS} characters"
    text = token.removeprefix(_VERSION)
    try:
        body = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    except (binascii.Error, ValueError):
        return "not base64url of JSON"
    if not isinstance(body, dict):
        return "not an object"
    positions: dict[str, Position] = {}
    for name, value in body.items():
        if not (
            isinstance(value, list)
            and len(value) == 2
            and isinstance(value[0], str)
            and _CHAIN.match(value[0])
            and type(value[1]) is int
            and 0 <= value[1] <= _MAX_OFFSET
        ):
            return f"entry {name!r} is not [chain, offset]"
        positions[name] = Position(value[0], value[1])
    return positions
