"""``http.tls``: the server's SSL context (certificate, mutual TLS, versions, ciphers)."""

from __future__ import annotations

import logging
import ssl

from dockyard.config import ConfigError, TLSConfig

__all__ = ["server_ssl_context"]

log = logging.getLogger("dockyard.tls")

_VERSIONS = {
    "tls1.0": ssl.TLSVersion.TLSv1,
    "tls1.1": ssl.TLSVersion.TLSv1_1,
    "tls1.2": ssl.TLSVersion.TLSv1_2,
    "tls1.3": ssl.TLSVersion.TLSv1_3,
}

# Go's names (as config.yml uses them) for OpenSSL's TLS 1.2 suites.
_GO_CIPHERS = {
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": "ECDHE-ECDSA-AES128-GCM-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": "ECDHE-RSA-AES128-GCM-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": "ECDHE-ECDSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": "ECDHE-RSA-AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305": "ECDHE-ECDSA-CHACHA20-POLY1305",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-ECDSA-CHACHA20-POLY1305",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA": "ECDHE-ECDSA-AES128-SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA": "ECDHE-RSA-AES128-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA": "ECDHE-ECDSA-AES256-SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA": "ECDHE-RSA-AES256-SHA",
    "TLS_RSA_WITH_AES_128_GCM_SHA256": "AES128-GCM-SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384": "AES256-GCM-SHA384",
    "TLS_RSA_WITH_AES_128_CBC_SHA": "AES128-SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA": "AES256-SHA",
}
# TLS 1.3 suites are always on in Python's ssl module; naming them is accepted.
_TLS13 = {"TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"}


def server_ssl_context(tls: TLSConfig) -> ssl.SSLContext | None:
    """The context for ``http.tls``, or None to serve plain HTTP."""
    if not tls.certificate:
        return None
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        ctx.load_cert_chain(tls.certificate, tls.key or None)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            f"http.tls.certificate: cannot load {tls.certificate} / {tls.key}: {exc}",
            "http.tls.certificate",
        ) from None
    ctx.minimum_version = _VERSIONS[tls.minimum_tls]
    if tls.client_cas:
        ctx.verify_mode = ssl.CERT_REQUIRED
        for ca in tls.client_cas:
            try:
                ctx.load_verify_locations(cafile=ca)
            except (OSError, ssl.SSLError) as exc:
                raise ConfigError(f"http.tls.clientcas: cannot load {ca}: {exc}",
                                  "http.tls.clientcas") from None
    if tls.cipher_suites:
        unknown = [c for c in tls.cipher_suites if c not in _GO_CIPHERS and c not in _TLS13]
        if unknown:
            raise ConfigError(f"http.tls.ciphersuites: unknown cipher suite {unknown[0]!r}",
                              "http.tls.ciphersuites")
        legacy = [_GO_CIPHERS[c] for c in tls.cipher_suites if c in _GO_CIPHERS]
        if legacy:
            ctx.set_ciphers(":".join(legacy))
        if set(tls.cipher_suites) & _TLS13 != _TLS13:
            log.warning("http.tls.ciphersuites: TLS 1.3 suites cannot be restricted in Python;"
                        " all three stay enabled")
    return ctx
