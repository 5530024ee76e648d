"""Helpers for the access-control and TLS tests: a CA, htpasswd files, the token issuer
as a real process, registries serving HTTPS, OCI layouts for skopeo, and JWT minting.

Nothing here imports dockyard: the servers are black boxes reached over loopback.
"""

from __future__ import annotations

import base64
import datetime as dt
import gzip
import hashlib
import io
import ipaddress
import json
import os
import re
import shutil
import ssl
import subprocess
import sys
import tarfile
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bcrypt
import httpx
import jwt
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from tests.support.net import LoopbackServer
from tests.support.servers import RegistryProcess, process_env

__all__ = [
    "BASIC_PATTERN",
    "JWT_PATTERN",
    "PKI",
    "Challenge",
    "IssuedCert",
    "OciImage",
    "Skopeo",
    "TLSRegistry",
    "TokenServer",
    "TokenServerStartError",
    "assert_not_logged",
    "bearer",
    "libtrust_kid",
    "make_oci_image",
    "parse_challenge",
    "scope_set",
    "sha256_digest",
    "unique_repo",
    "write_htpasswd",
]

#: Anything that looks like a compact JWS (header and payload are base64url JSON objects).
JWT_PATTERN = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*")
#: A candidate for Basic credentials (``Basic <base64 of user:password>``).
BASIC_PATTERN = re.compile(r"(?i)\bbasic\s+([A-Za-z0-9+/]{4,}={0,2})")
STARTUP_DEADLINE = 15.0


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def unique_repo(prefix: str) -> str:
    """``prefix/<12 hex>``: a repository no other test uses."""
    return f"{prefix}/{uuid.uuid4().hex[:12]}"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# -- htpasswd ------------------------------------------------------------------------------


def write_htpasswd(path: Path, users: Mapping[str, str], *, flag: str = "-B") -> None:
    """Write ``users`` to ``path`` as ``htpasswd <flag>`` does (``-B``: bcrypt).

    Uses Apache's ``htpasswd`` (apache2-utils) when installed; without it only bcrypt
    entries can be made, with the ``bcrypt`` package and ``$2y$`` like ``htpasswd -B``.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    tool = shutil.which("htpasswd")
    if tool is None:
        if flag != "-B":
            raise RuntimeError(f"htpasswd {flag} needs apache2-utils")
        lines = []
        for user, password in users.items():
            hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(5)).decode()
            lines.append(f"{user}:$2y${hashed[4:]}")
        path.write_text("\n".join(lines) + "\n")
        return
    for index, (user, password) in enumerate(users.items()):
        # -i reads the password from stdin, so it never shows in a process listing.
        args = [tool, "-i", flag]
        if flag == "-B":
            args += ["-C", "5"]  # cheap cost: bcrypt runs on every uncached check
        if index == 0:
            args.append("-c")
        subprocess.run(
            [*args, str(path), user],
            input=password.encode(),
            check=True,
            capture_output=True,
            timeout=30,
        )


# -- a CA and certificates ---------------------------------------------------------------


@dataclass(frozen=True)
class IssuedCert:
    cert: Path
    key: Path


class PKI:
    """A test CA (EC P-256) that issues server and client certificates into ``folder``."""

    def __init__(self, folder: Path, name: str = "dockyard test CA") -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = dt.datetime.now(dt.UTC)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(self.key.public_key()), critical=False
            )
            .sign(self.key, hashes.SHA256())
        )
        self.ca_path = folder / "ca.crt"
        self.ca_path.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))

    def issue(self, name: str, *, server: bool) -> IssuedCert:
        """A leaf for ``name``: server certificates carry SAN 127.0.0.1 and localhost."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                critical=False,
            )
        )
        if server:
            builder = builder.add_extension(
                x509.SubjectAlternativeName(
                    [
                        x509.IPAddress(ipaddress.IPv4Address("127.0.0.1")),
                        x509.DNSName("localhost"),
                    ]
                ),
                critical=False,
            )
        cert = builder.sign(self.key, hashes.SHA256())
        cert_path = self.folder / f"{name}.crt"
        key_path = self.folder / f"{name}.key"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        key_path.chmod(0o600)
        return IssuedCert(cert_path, key_path)

    def client_context(
        self,
        client: IssuedCert | None = None,
        *,
        maximum: ssl.TLSVersion | None = None,
        minimum: ssl.TLSVersion | None = None,
    ) -> ssl.SSLContext:
        """A client context trusting this CA, with an optional client certificate."""
        ctx = ssl.create_default_context(cafile=str(self.ca_path))
        if client is not None:
            ctx.load_cert_chain(str(client.cert), str(client.key))
        if maximum is not None:
            ctx.maximum_version = maximum
        if minimum is not None:
            ctx.minimum_version = minimum
        return ctx

    def cert_dir(self, name: str, client: IssuedCert | None = None) -> Path:
        """A containers-certs.d style folder for skopeo: ``ca.crt`` plus, with
        ``client``, ``client.cert``/``client.key``."""
        folder = self.folder / "certs.d" / name
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(self.ca_path, folder / "ca.crt")
        if client is not None:
            shutil.copy(client.cert, folder / "client.cert")
            shutil.copy(client.key, folder / "client.key")
        return folder


class TLSRegistry(RegistryProcess):
    """A registry serving HTTPS (``http.tls``); readiness is checked over TLS with
    ``client_ssl`` (which must carry a client certificate under mutual TLS)."""

    def __init__(self, *args: Any, client_ssl: ssl.SSLContext, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.client_ssl = client_ssl

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _probe(self) -> httpx.Response:
        return httpx.get(f"{self.url}/v2/", verify=self.client_ssl, timeout=2.0)


# -- the token issuer ----------------------------------------------------------------------


class TokenServerStartError(RuntimeError):
    """The token server exited or did not answer; the message carries its log."""


class TokenServer(LoopbackServer):
    """``dockyard token-server ISSUER_CONFIG`` as a real process on a free loopback port.

    ``settings`` is the issuer YAML (``addr`` is filled in); relative paths in it are
    relative to ``workdir``, where ``issuer.yml`` and ``issuer.log`` are written.
    """

    what = "token server"
    log_name = "issuer.log"
    deadline = STARTUP_DEADLINE
    stop_timeout = 10.0
    start_error = TokenServerStartError

    def __init__(self, workdir: Path, settings: Mapping[str, Any] | None = None) -> None:
        super().__init__(workdir)
        self.config_path = self.workdir / "issuer.yml"
        self.settings: dict[str, Any] = {"addr": f"127.0.0.1:{self.port}", **(settings or {})}
        self._text: str | None = None  # a config file written verbatim (from_text)

    @classmethod
    def from_text(cls, workdir: Path, text: str, port: int) -> TokenServer:
        """An issuer whose config file is ``text`` verbatim (its addr must use ``port``)."""
        server = cls(workdir)
        server.port = port
        server.settings = yaml.safe_load(text)
        server.config_path.write_text(text)
        server._text = text
        return server

    @property
    def realm(self) -> str:
        return f"{self.url}/token"

    @property
    def returncode(self) -> int | None:
        """The exit status, once the process has ended."""
        return self._proc.poll() if self._proc is not None else None

    def path(self, key: str) -> Path:
        """A path setting (``certificate``, ``key``, ``htpasswd``) resolved like the issuer."""
        value = Path(self.settings[key])
        return value if value.is_absolute() else self.workdir / value

    def command(self) -> list[str]:
        return [sys.executable, "-m", "dockyard", "token-server", str(self.config_path)]

    def environment(self) -> dict[str, str]:
        return process_env()

    def ready(self) -> bool:
        return httpx.get(self.realm, timeout=2.0).status_code in (200, 401)

    def start(self, deadline: float | None = None) -> None:
        if self._text is None:
            self.config_path.write_text(yaml.safe_dump(self.settings, sort_keys=False))
        try:
            super().start(deadline)
        except TokenServerStartError:
            if self.returncode is None:  # not ready in time; one that exited keeps its status
                self.stop()
            raise

    def token(
        self,
        scopes: Sequence[str],
        user: str | None,
        password: str | None,
        *,
        service: str | None = None,
        offline: bool = False,
    ) -> httpx.Response:
        """``GET /token?service=..&scope=..`` with Basic credentials (if ``user``)."""
        params: list[tuple[str, str]] = [("service", service or self.settings["service"])]
        params += [("scope", s) for s in scopes]
        if offline:
            params += [("offline_token", "true"), ("client_id", "dockyard-tests")]
        auth = (user, password or "") if user is not None else None
        return httpx.get(self.realm, params=params, auth=auth, timeout=30)

    # -- the signing material, for minting tokens in tests -------------------------------

    def signing_key(self) -> ec.EllipticCurvePrivateKey:
        key = serialization.load_pem_private_key(self.path("key").read_bytes(), password=None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        return key

    def certificate(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.path("certificate").read_bytes())


def libtrust_kid(public_key: Any) -> str:
    """docker/libtrust's key ID: SHA-256 of the DER SubjectPublicKeyInfo, first 240 bits,
    base32, in groups of four joined by ``:`` (what ``kid`` carries in distribution)."""
    der = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    encoded = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode().rstrip("=")
    return ":".join(encoded[i : i + 4] for i in range(0, len(encoded), 4))


def x5c_of(cert: x509.Certificate) -> list[str]:
    return [base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()]


def mint(
    key: Any,
    claims: Mapping[str, Any],
    *,
    algorithm: str = "ES256",
    headers: Mapping[str, Any] | None = None,
) -> str:
    return jwt.encode(dict(claims), key, algorithm=algorithm, headers=dict(headers or {}))


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


# -- challenges and logs -------------------------------------------------------------------


@dataclass(frozen=True)
class Challenge:
    scheme: str
    params: dict[str, str] = field(default_factory=dict)


_PARAM = re.compile(r'([A-Za-z_]+)="((?:[^"\\]|\\.)*)"')


def parse_challenge(value: str | None) -> Challenge:
    """``Bearer realm="..",service="..",scope=".."`` -> Challenge("bearer", {...})."""
    assert value, "no WWW-Authenticate header"
    scheme, _, rest = value.partition(" ")
    params = {k.lower(): re.sub(r"\\(.)", r"\1", v) for k, v in _PARAM.findall(rest)}
    return Challenge(scheme.lower(), params)


def scope_set(scope: str | None) -> set[tuple[str, str, str]]:
    """A scope string as a set of (type, name, action): distribution orders actions at
    random and its silly controller writes one entry per action."""
    result = set()
    for part in (scope or "").split():
        rtype, _, rest = part.partition(":")
        name, _, actions = rest.rpartition(":")
        result.update((rtype, name, action) for action in actions.split(","))
    return result


def assert_not_logged(
    logs: Mapping[str, str],
    secrets: Iterable[str],
    credentials: Mapping[str, str] | None = None,
) -> None:
    """No password or token in any log, not even base64-encoded as in a Basic header;
    nothing that looks like a JWT or an Authorization header value at all."""
    needles = {secret: f"a secret ({secret[:6]}...)" for secret in secrets}
    for user, password in (credentials or {}).items():
        encoded = base64.b64encode(f"{user}:{password}".encode()).decode()
        needles[encoded] = f"{user}'s Basic credentials"
    for name, text in logs.items():
        assert text, f"{name} is empty: the check would prove nothing"
        for needle, what in needles.items():
            assert needle not in text, f"{name} contains {what}"
        found = JWT_PATTERN.search(text)
        assert found is None, f"{name} contains a token: {found.group(0)[:24]}..."
        for match in BASIC_PATTERN.finditer(text):
            assert not _is_basic_credential(match.group(1)), (
                f"{name} contains Basic credentials: {match.group(0)[:16]}..."
            )


def _is_basic_credential(value: str) -> bool:
    try:
        decoded = base64.b64decode(value, validate=True)
    except ValueError:
        return False
    return b":" in decoded


# -- images for skopeo -----------------------------------------------------------------------


@dataclass(frozen=True)
class OciImage:
    """An OCI image layout on disk with one tagged image (``oci:<path>:<tag>``)."""

    path: Path
    tag: str
    manifest_digest: str
    layer_digest: str
    config_digest: str

    @property
    def ref(self) -> str:
        return f"oci:{self.path}:{self.tag}"


def make_oci_image(path: Path, *, tag: str = "v1", payload: bytes | None = None) -> OciImage:
    """A single-layer image: a gzipped tar holding ``payload`` (random by default)."""
    blobs = path / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)
    payload = payload if payload is not None else os.urandom(4096)

    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("payload.bin")
        info.size = len(payload)
        info.mtime = 0
        tar.addfile(info, io.BytesIO(payload))
    layer = gzip.compress(raw.getvalue(), mtime=0)
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": [sha256_digest(raw.getvalue())]},
        }
    ).encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": sha256_digest(config),
                "size": len(config),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": sha256_digest(layer),
                    "size": len(layer),
                }
            ],
        }
    ).encode()
    for blob in (layer, config, manifest):
        (blobs / hashlib.sha256(blob).hexdigest()).write_bytes(blob)
    (path / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": sha256_digest(manifest),
                "size": len(manifest),
                "annotations": {"org.opencontainers.image.ref.name": tag},
            }
        ],
    }
    (path / "index.json").write_text(json.dumps(index))
    return OciImage(path, tag, sha256_digest(manifest), sha256_digest(layer), sha256_digest(config))


class Skopeo:
    """``skopeo`` with its own (empty) auth file, so no stored credentials leak in."""

    def __init__(self, workdir: Path) -> None:
        binary = shutil.which("skopeo")
        if binary is None:
            raise RuntimeError("skopeo is missing: apt-get install -y skopeo")
        self.binary = binary
        workdir.mkdir(parents=True, exist_ok=True)
        self.auth_file = workdir / "auth.json"
        self.auth_file.write_text('{"auths": {}}')
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")},
            "REGISTRY_AUTH_FILE": str(self.auth_file),
            "HOME": str(workdir),
            "XDG_RUNTIME_DIR": str(workdir),
        }

    def run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.binary, "--insecure-policy", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=self.env,
            stdin=subprocess.DEVNULL,
        )

    def copy(self, src: str, dest: str, *options: str) -> subprocess.CompletedProcess[str]:
        return self.run("copy", "--quiet", *options, src, dest)
