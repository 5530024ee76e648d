"""The token issuer's configuration file and its ACL: who is granted what."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

from dockyard.auth._util import check_keys
from dockyard.auth.access import (
    ALL_ACTIONS,
    Access,
)

__all__ = [
    "SECTION",
    "AclRule",
    "IssuerConfig",
    "granted_accesses",
    "load_issuer_config",
    "parse_issuer_config",
]

SECTION = "issuer config"
_ANONYMOUS = "anonymous"
_ANY_USER = "*"
_GROUP = "group:"


# Configuration


@dataclass(frozen=True)
class AclRule:
    """Allow ``subject`` the ``actions`` on resources of ``type`` whose name matches
    the glob ``repository``."""

    subject: str
    repository: str
    actions: tuple[str, ...]
    type: str = "repository"

    def matches(self, access: Access) -> bool:
        """True if this rule is about ``access``'s resource."""
        return access.type == self.type and fnmatchcase(access.name, self.repository)

    def permits(self, action: str) -> bool:
        """True if this rule allows ``action`` (``*`` allows all, incl. ``*`` itself)."""
        return ALL_ACTIONS in self.actions or action in self.actions


@dataclass(frozen=True)
class IssuerConfig:
    """The token issuer's settings (see :func:`load_issuer_config`)."""

    certificate: Path
    key: Path
    issuer: str = "dockyard-token-issuer"
    service: str = "dockyard"
    addr: str = "127.0.0.1:5001"
    expiration: int = 300
    htpasswd: Path | None = None
    anonymous: bool = False
    groups: Mapping[str, frozenset[str]] = field(default_factory=lambda: MappingProxyType({}))
    acl: tuple[AclRule, ...] = ()
    realm: str = ""  # Basic challenge realm; empty means the issuer name
    refresh_expiration: int = 30 * 24 * 3600  # 0: no refresh tokens

    @property
    def host(self) -> str:
        """Host part of ``addr`` (IPv6 without brackets)."""
        return _split_addr(self.addr)[0]

    @property
    def port(self) -> int:
        """Port part of ``addr``."""
        return _split_addr(self.addr)[1]


def _split_addr(addr: str) -> tuple[str, int]:
    host, sep, port = addr.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"{SECTION}: option 'addr' must be host:port, got {addr!r}")
    return host.strip("[]") or "0.0.0.0", int(port)


def _get_str(data: Mapping[str, Any], key: str, default: str | None = None) -> str:
    value = data.get(key, default)
    if not isinstance(value, str) or not value:
        raise ValueError(f"{SECTION}: option {key!r} must be a non-empty string")
    return value


def _get_int(data: Mapping[str, Any], key: str, default: int, minimum: int) -> int:
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{SECTION}: option {key!r} must be an integer >= {minimum}")
    return value


def _get_path(data: Mapping[str, Any], key: str, base: Path | None) -> Path:
    path = Path(_get_str(data, key))
    return base / path if base is not None and not path.is_absolute() else path


def _str_list(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ValueError(f"{SECTION}: option {where!r} must be a list of non-empty strings")
    return tuple(value)


def _parse_groups(value: Any) -> dict[str, frozenset[str]]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValueError(f"{SECTION}: option 'groups' must map group names to user lists")
    groups: dict[str, frozenset[str]] = {}
    for name, members in value.items():
        if not isinstance(name, str) or not name:
            raise ValueError(f"{SECTION}: option 'groups' has an invalid group name {name!r}")
        groups[name] = frozenset(_str_list(members, f"groups.{name}"))
    return groups


def _parse_acl(value: Any, groups: Mapping[str, frozenset[str]]) -> tuple[AclRule, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise ValueError(f"{SECTION}: option 'acl' must be a list of rules")
    rules: list[AclRule] = []
    for index, entry in enumerate(value):
        where = f"acl[{index}]"
        if not isinstance(entry, Mapping):
            raise ValueError(f"{SECTION}: option {where!r} must be a mapping")
        check_keys(entry, f"{SECTION} {where}", ("subject", "repository", "actions", "type"))
        subject = entry.get("subject")
        if not isinstance(subject, str) or not subject or subject != subject.strip():
            raise ValueError(f"{SECTION}: option '{where}.subject' must be a non-empty string")
        if subject.startswith(_GROUP) and subject[len(_GROUP) :] not in groups:
            raise ValueError(
                f"{SECTION}: option '{where}.subject' names undefined group "
                f"{subject[len(_GROUP) :]!r} (define it under 'groups')"
            )
        repository = entry.get("repository")
        if not isinstance(repository, str) or not repository:
            raise ValueError(f"{SECTION}: option '{where}.repository' must be a glob")
        rtype = entry.get("type", "repository")
        if not isinstance(rtype, str) or not rtype:
            raise ValueError(f"{SECTION}: option '{where}.type' must be a non-empty string")
        actions = _str_list(entry.get("actions"), f"{where}.actions")
        rules.append(AclRule(subject, repository, actions, rtype))
    return tuple(rules)


_CONFIG_KEYS = (
    "issuer",
    "service",
    "addr",
    "expiration",
    "certificate",
    "key",
    "htpasswd",
    "anonymous",
    "groups",
    "acl",
    "realm",
    "refresh_expiration",
)


def parse_issuer_config(data: Any, base_dir: Path | None = None) -> IssuerConfig:
    """An :class:`IssuerConfig` from parsed YAML; relative paths are resolved against
    ``base_dir``. Raises ``ValueError`` naming the offending key."""
    if not isinstance(data, Mapping):
        raise ValueError(f"{SECTION}: expected a mapping at the top level")
    check_keys(data, SECTION, _CONFIG_KEYS)
    anonymous = data.get("anonymous", False)
    if not isinstance(anonymous, bool):
        raise ValueError(f"{SECTION}: option 'anonymous' must be true or false")
    groups = _parse_groups(data.get("groups"))
    realm = data.get("realm", "")
    if not isinstance(realm, str):
        raise ValueError(f"{SECTION}: option 'realm' must be a string")
    cfg = IssuerConfig(
        certificate=_get_path(data, "certificate", base_dir),
        key=_get_path(data, "key", base_dir),
        issuer=_get_str(data, "issuer", IssuerConfig.issuer),
        service=_get_str(data, "service", IssuerConfig.service),
        addr=_get_str(data, "addr", IssuerConfig.addr),
        expiration=_get_int(data, "expiration", IssuerConfig.expiration, 1),
        htpasswd=_get_path(data, "htpasswd", base_dir) if data.get("htpasswd") else None,
        anonymous=anonymous,
        groups=MappingProxyType(groups),
        acl=_parse_acl(data.get("acl"), groups),
        realm=realm,
        refresh_expiration=_get_int(data, "refresh_expiration", IssuerConfig.refresh_expiration, 0),
    )
    _split_addr(cfg.addr)
    return cfg


def load_issuer_config(path: str | os.PathLike[str]) -> IssuerConfig:
    """Read the issuer's YAML config file (relative paths are relative to its folder)."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ValueError(f"{SECTION}: cannot read {path}: {exc}") from None
    return parse_issuer_config(data, path.parent)


# Authorization


def granted_accesses(
    cfg: IssuerConfig, subject: str | None, requested: Sequence[Access]
) -> list[Access]:
    """The requested accesses the ACL allows ``subject`` (None: anonymous)."""
    rules = [rule for rule in cfg.acl if _applies(cfg, rule, subject)]
    return [a for a in requested if any(r.matches(a) and r.permits(a.action) for r in rules)]


def _applies(cfg: IssuerConfig, rule: AclRule, subject: str | None) -> bool:
    if rule.subject == _ANONYMOUS:
        return cfg.anonymous
    if subject is None:
        return False
    if rule.subject == _ANY_USER:
        return True
    if rule.subject.startswith(_GROUP):
        return subject in cfg.groups.get(rule.subject[len(_GROUP) :], frozenset())
    return rule.subject == subject
