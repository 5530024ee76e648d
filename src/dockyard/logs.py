"""Logging as ``log.level``, ``log.formatter`` and ``log.fields`` ask; the access log.

Formats (one line per record):

``text``
    ``2006-01-02 15:04:05,000 INFO dockyard.api: message key=value ...``
``json``
    ``{"time": ..., "level": "info", "logger": ..., "msg": ..., ...}``
``logstash``
    ``{"@timestamp": ..., "@version": "1", "level": "info", "logger": ..., "message": ...}``

Every line carries the ``log.fields`` and, when written while a request is handled,
its id as ``http.request.id`` (distribution's field name): the id a client got in
``X-Request-Id`` and a receiver in ``request.id`` finds the request's lines. Access
log lines (logger ``dockyard.access``, off with ``log.accesslog.disabled``) carry the
request's method, URI, status, size, duration, remote address and user agent as
fields too.

Nothing secret is written: credentials in URLs (``user:password@``), the values of
query parameters and ``key=value`` pairs named like secrets (``password``, ``token``,
``secret``, the signed upload ``_state``...) and ``Authorization`` values are
replaced by ``REDACTED`` in every line, whatever logged them.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from collections.abc import Mapping
from typing import Any

from aiohttp.abc import AbstractAccessLogger
from aiohttp.web import BaseRequest, StreamResponse

from dockyard.api.requestid import REQUEST_ID, current_request_id

__all__ = ["AccessLogger", "redact", "setup_logging"]

_LEVELS = {"error": logging.ERROR, "warn": logging.WARNING, "info": logging.INFO,
           "debug": logging.DEBUG}

_SECRET_NAMES = (r"[\w-]*(?:password|passwd|secret|token|_state|credential|signature"
                 r"|accesskey|access_key|apikey|api_key)[\w-]*")
_SECRETS = [
    # ?password=x, &_state=x, client_secret='x'
    (re.compile(rf"(?i)(\b{_SECRET_NAMES}=[\"']?)[^\s&\"',;}}]+"), r"\1REDACTED"),
    # "password": "x" (JSON)
    (re.compile(rf"(?i)(\"{_SECRET_NAMES}\"\s*:\s*\")[^\"]+"), r"\1REDACTED"),
    (re.compile(r"(?i)(authorization\"?\s*[=:]\s*[\"']?(?:basic|bearer)?\s*)[^\s\"',;}]+"),
     r"\1REDACTED"),
    (re.compile(r"(?i)\b(basic|bearer) [A-Za-z0-9._~+/=-]{8,}"), r"\1 REDACTED"),
    (re.compile(r"(://[^/\s:@]+:)[^/\s@]+@"), r"\1REDACTED@"),  # URL credentials
]


def redact(text: str) -> str:
    """``text`` with every secret-looking value replaced by ``REDACTED``."""
    for pattern, replacement in _SECRETS:
        text = pattern.sub(replacement, text)
    return text


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    """The record's structured fields: ``extra={"fields": {...}}`` and the request id."""
    fields: dict[str, Any] = dict(getattr(record, "fields", None) or {})
    rid = fields.get("http.request.id") or current_request_id.get()
    if rid:
        fields["http.request.id"] = rid
    return fields


class _TextFormatter(logging.Formatter):
    def __init__(self, fields: Mapping[str, Any]) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")
        self._static = dict(fields)

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extra = {**_fields(record), **self._static}
        if extra:
            line += "".join(f" {k}={_text_value(v)}" for k, v in extra.items())
        return redact(line)


def _text_value(value: Any) -> str:
    text = str(value)
    return json.dumps(text) if (not text or " " in text or '"' in text) else text


class _JsonFormatter(logging.Formatter):
    def __init__(self, fields: Mapping[str, Any], *, logstash: bool = False) -> None:
        super().__init__()
        self._static = dict(fields)
        self._logstash = logstash

    def format(self, record: logging.LogRecord) -> str:
        stamp = self.formatTime(record, "%Y-%m-%dT%H:%M:%S")
        stamp += f".{int(record.msecs):03d}" + time.strftime("%z", time.localtime(record.created))
        if self._logstash:
            entry: dict[str, Any] = {"@timestamp": stamp, "@version": "1",
                                     "level": record.levelname.lower(), "logger": record.name,
                                     "message": record.getMessage()}
        else:
            entry = {"time": stamp, "level": record.levelname.lower(), "logger": record.name,
                     "msg": record.getMessage()}
        entry.update(_fields(record))
        entry.update(self._static)
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return redact(json.dumps(entry, default=str))


class AccessLogger(AbstractAccessLogger):
    """One line per request, with distribution's ``http.request.*`` fields."""

    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        peer = request.transport.get_extra_info("peername") if request.transport else None
        remote = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else (request.remote or "-")
        fields = {
            "http.request.id": request.get(REQUEST_ID, ""),
            "http.request.method": request.method,
            "http.request.uri": request.path_qs,
            "http.request.remoteaddr": remote,
            "http.request.useragent": request.headers.get("User-Agent", ""),
            "http.response.status": response.status,
            "http.response.written": response.body_length,
            "http.response.duration": f"{time:.6f}s",
        }
        self.logger.info(
            '%s "%s %s HTTP/%d.%d" %d %d', remote, request.method, request.path_qs,
            request.version.major, request.version.minor, response.status,
            response.body_length, extra={"fields": fields},
        )


def setup_logging(level: str = "info", formatter: str = "text",
                  fields: Mapping[str, Any] | None = None) -> None:
    """Configure the root logger once per process."""
    handler = logging.StreamHandler(sys.stderr)
    if formatter in ("json", "logstash"):
        handler.setFormatter(_JsonFormatter(fields or {}, logstash=formatter == "logstash"))
    else:
        handler.setFormatter(_TextFormatter(fields or {}))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(_LEVELS.get(level, logging.INFO))
