"""``cloudfront``: blob downloads from S3 redirected to CloudFront URLs signed with a key pair.

As distribution's ``cloudfront`` middleware (S3 only): the URL is ``baseurl`` + the
object's S3 key, signed with a *canned policy*: the policy
``{"Statement":[{"Resource":"<url>","Condition":{"DateLessThan":{"AWS:EpochTime":<t>}}}]}``
is signed with RSA-SHA1 (PKCS#1 v1.5) by ``privatekey`` (a PEM file), and the URL
carries ``Expires=<t>``, ``Signature=`` (base64 with ``+=/`` replaced by ``-_~``) and
``Key-Pair-Id=<keypairid>``, which is what CloudFront checks. ``duration`` (default
20m) sets ``<t>``.

``ipfilteredby`` keeps clients inside AWS on S3's own pre-signed URLs: ``none``
(default) sends everyone to CloudFront, ``aws`` lets any AWS address go to S3,
``awsregion`` only those in ``awsregion`` (a comma-separated list). The ranges come
from ``iprangesurl`` (AWS's ``ip-ranges.json`` by default; a mirror works offline),
refreshed every ``updatefrequency`` (default 12h). The client's address is the first
``X-Forwarded-For`` address, else ``X-Real-Ip``, else the peer, as distribution reads it.
"""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from dockyard.clientaddr import CLIENT_IP
from dockyard.storage.drivers.base import StorageDriver
from dockyard.storage.drivers.middleware._awsips import AwsAddresses
from dockyard.storage.drivers.middleware._forwarding import ForwardingDriver
from dockyard.storage.drivers.middleware._options import OptionReader

__all__ = ["CloudFrontMiddleware", "CloudFrontSigner"]

log = logging.getLogger("dockyard.storage.middleware")

DEFAULT_IP_RANGES_URL = "https://ip-ranges.amazonaws.com/ip-ranges.json"

_OPTIONS = frozenset({
    "baseurl", "privatekey", "keypairid", "duration", "ipfilteredby", "awsregion",
    "updatefrequency", "updatefrenquency", "iprangesurl",
})


@runtime_checkable
class ObjectKeys(Protocol):
    """A driver that knows the object key of a path (the S3 driver)."""

    def key(self, path: str) -> str: ...


class CloudFrontSigner:
    """Signs URLs with a CloudFront key pair and a canned policy."""

    def __init__(self, key_pair_id: str, private_key: rsa.RSAPrivateKey) -> None:
        self.key_pair_id = key_pair_id
        self.private_key = private_key

    @staticmethod
    def policy(url: str, expires: int) -> bytes:
        """The canned policy CloudFront rebuilds from the URL and ``Expires`` to verify."""
        statement = {"Resource": url, "Condition": {"DateLessThan": {"AWS:EpochTime": expires}}}
        return json.dumps({"Statement": [statement]}, separators=(",", ":")).encode()

    def sign(self, url: str, expires: int) -> str:
        signature = self.private_key.sign(
            self.policy(url, expires), padding.PKCS1v15(), hashes.SHA1()
        )
        encoded = base64.b64encode(signature).decode().translate(str.maketrans("+=/", "-_~"))
        separator = "&" if "?" in url else "?"
        query = f"Expires={expires}&Signature={encoded}&Key-Pair-Id={self.key_pair_id}"
        return f"{url}{separator}{query}"


class CloudFrontMiddleware(ForwardingDriver):
    """Redirects downloads to signed CloudFront URLs (or to S3 for AWS-internal clients)."""

    def __init__(
        self,
        inner: StorageDriver,
        base_url: str,
        signer: CloudFrontSigner,
        duration: float,
        aws: AwsAddresses | None,
    ) -> None:
        super().__init__(inner)
        self.base_url = base_url
        self.signer = signer
        self.duration = duration
        self.aws = aws
        self.keys = inner if isinstance(inner, ObjectKeys) else None
        if self.keys is None:
            log.warning("middleware.storage.cloudfront: the %s driver is not supported "
                        "(S3 only); its downloads are not redirected to CloudFront", inner.name)

    @classmethod
    def from_options(
        cls, inner: StorageDriver, options: Mapping[str, Any]
    ) -> CloudFrontMiddleware:
        o = OptionReader("cloudfront", options, _OPTIONS)
        base_url = o.required("baseurl")
        if "://" not in base_url:
            base_url = "https://" + base_url
        if not base_url.endswith("/"):
            base_url += "/"
        signer = CloudFrontSigner(o.required("keypairid"), _private_key(o))
        duration = o.duration("duration", "20m")
        if o.params.get("updatefrenquency") is not None and o.params.get("updatefrequency") is None:
            log.warning("middleware.storage.cloudfront.updatefrenquency is deprecated: "
                        "use updatefrequency")
            o.params["updatefrequency"] = o.params["updatefrenquency"]
        update_frequency = o.duration("updatefrequency", "12h")
        if update_frequency <= 0:
            raise o.fail("updatefrequency", "must be positive")
        ranges_url = o.string("iprangesurl") or DEFAULT_IP_RANGES_URL
        mode = o.string("ipfilteredby").lower() or "none"
        aws: AwsAddresses | None = None
        if mode == "aws":
            aws = AwsAddresses(ranges_url, update_frequency, None)
        elif mode == "awsregion":
            regions = [r.strip() for r in o.string("awsregion").split(",") if r.strip()]
            if not regions:
                raise o.fail("awsregion", "required with ipfilteredby: awsregion "
                              "(a comma-separated list of AWS regions)")
            aws = AwsAddresses(ranges_url, update_frequency, regions)
        elif mode != "none":
            raise o.fail("ipfilteredby", f"expected one of none, aws, awsregion, got {mode!r}")
        o.check_unknown()
        return cls(inner, base_url, signer, duration, aws)

    async def redirect_url(self, path: str, method: str) -> str | None:
        if self.keys is None or method not in ("GET", "HEAD"):
            return await self.inner.redirect_url(path, method)
        client = CLIENT_IP.get()
        if self.aws is not None and client is not None and await self.aws.contains(client):
            return await self.inner.redirect_url(path, method)
        expires = int(time.time() + self.duration)
        return self.signer.sign(self.base_url + self.keys.key(path), expires)

    async def aclose(self) -> None:
        if self.aws is not None:
            await self.aws.aclose()
        await super().aclose()


def _private_key(o: OptionReader) -> rsa.RSAPrivateKey:
    path = o.required("privatekey")
    try:
        with open(path, "rb") as f:
            pem = f.read()
    except OSError as exc:
        raise o.fail("privatekey", f"cannot read the private key file: {exc}") from None
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        raise o.fail("privatekey", f"not an unencrypted PEM private key: {exc}") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise o.fail("privatekey", "CloudFront key pairs are RSA keys")
    return key
