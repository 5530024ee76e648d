"""The ``_state`` upload token: HMAC-signed, in distribution's own format.

``base64url(HMAC-SHA256(secret, json) || json)`` with the JSON fields ``Name``,
``UUID``, ``Offset`` and ``StartedAt``: a token minted by ``docker-registry``
with the same ``http.secret`` is accepted here, and the other way round.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import datetime

from dockyard.errors import BlobUploadInvalid

__all__ = ["UploadState", "UploadStateSigner"]

_MAC_SIZE = hashlib.sha256().digest_size


@dataclass(frozen=True, slots=True)
class UploadState:
    """What the client is told about its upload, and hands back on the next request."""

    name: str
    uuid: str
    offset: int
    started_at: datetime


class UploadStateSigner:
    """Packs and verifies upload tokens with the registry's shared secret."""

    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def pack(self, state: UploadState) -> str:
        message = json.dumps(
            {
                "Name": state.name,
                "UUID": state.uuid,
                "Offset": state.offset,
                "StartedAt": state.started_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
            },
            separators=(",", ":"),
        ).encode()
        mac = hmac.new(self._secret, message, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac + message).decode()

    def unpack(self, token: str) -> UploadState:
        """The state in ``token``; :class:`BlobUploadInvalid` if it is not ours or is malformed."""
        try:
            raw = base64.urlsafe_b64decode(token.encode() + b"=" * (-len(token) % 4))
        except (binascii.Error, ValueError):
            raise BlobUploadInvalid("invalid upload state token") from None
        mac, message = raw[:_MAC_SIZE], raw[_MAC_SIZE:]
        expected = hmac.new(self._secret, message, hashlib.sha256).digest()
        if len(mac) != _MAC_SIZE or not hmac.compare_digest(mac, expected):
            raise BlobUploadInvalid("upload state token failed verification")
        try:
            fields = json.loads(message)
            started = datetime.fromisoformat(str(fields["StartedAt"]).replace("Z", "+00:00"))
            return UploadState(
                str(fields["Name"]), str(fields["UUID"]), int(fields["Offset"]), started
            )
        except (ValueError, KeyError, TypeError):
            raise BlobUploadInvalid("malformed upload state token") from None
