"""V4 signed URLs for GCS objects, signed locally with a service account key."""

from __future__ import annotations

import binascii
import hashlib
from datetime import UTC, datetime
from urllib.parse import quote, urlsplit

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

__all__ = ["REDIRECT_EXPIRY", "sign_url_v4"]

REDIRECT_EXPIRY = 20 * 60


def sign_url_v4(
    *,
    host_url: str,
    bucket: str,
    name: str,
    client_email: str,
    private_key: str,
    method: str = "GET",
    expires: int = REDIRECT_EXPIRY,
    now: datetime | None = None,
) -> str:
    """A V4 signed URL (``GOOG4-RSA-SHA256``) for one object, signed with the key locally."""
    now = now or datetime.now(UTC)
    timestamp = now.strftime("%Y%m%dT%H%M%SZ")
    scope = f"{now.strftime('%Y%m%d')}/auto/storage/goog4_request"
    host = urlsplit(host_url).netloc
    canonical_uri = f"/{bucket}/{quote(name, safe='/~')}"
    query = {
        "X-Goog-Algorithm": "GOOG4-RSA-SHA256",
        "X-Goog-Credential": f"{client_email}/{scope}",
        "X-Goog-Date": timestamp,
        "X-Goog-Expires": str(expires),
        "X-Goog-SignedHeaders": "host",
    }
    canonical_query = "&".join(
        f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in sorted(query.items())
    )
    canonical_request = "\n".join(
        [method, canonical_uri, canonical_query, f"host:{host}\n", "host", "UNSIGNED-PAYLOAD"]
    )
    to_sign = "\n".join(
        [
            "GOOG4-RSA-SHA256",
            timestamp,
            scope,
            hashlib.sha256(canonical_request.encode()).hexdigest(),
        ]
    )
    key = serialization.load_pem_private_key(private_key.encode(), password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("the service account key is not an RSA key")
    signature = key.sign(to_sign.encode(), padding.PKCS1v15(), hashes.SHA256())
    return (
        f"{host_url.rstrip('/')}{canonical_uri}?{canonical_query}"
        f"&X-Goog-Signature={binascii.hexlify(signature).decode()}"
    )
