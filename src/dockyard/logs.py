"""Logging as ``log.level`` and ``log.formatter`` ask (text, or one JSON object per line)."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Mapping
from typing import Any

__all__ = ["setup_logging"]

_LEVELS = {"error": logging.ERROR, "warn": logging.WARNING, "info": logging.INFO,
           "debug": logging.DEBUG}


class _JsonFormatter(logging.Formatter):
    def __init__(self, fields: Mapping[str, Any]) -> None:
        super().__init__()
        self._fields = dict(fields)

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            **self._fields,
        }
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def setup_logging(level: str = "info", formatter: str = "text",
                  fields: Mapping[str, Any] | None = None) -> None:
    """Configure the root logger once per process."""
    handler = logging.StreamHandler(sys.stderr)
    if formatter in ("json", "logstash"):
        handler.setFormatter(_JsonFormatter(fields or {}))
    else:
        suffix = "".join(f" {k}={v}" for k, v in (fields or {}).items())
        handler.setFormatter(
            logging.Formatter(f"%(asctime)s %(levelname)s %(name)s: %(message)s{suffix}")
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(_LEVELS.get(level, logging.INFO))
