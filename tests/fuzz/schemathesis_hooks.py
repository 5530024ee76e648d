"""Schemathesis hooks for the OpenAPI campaign (loaded through ``SCHEMATHESIS_HOOKS``).

Signed schema1 manifests are JSON under a media type schemathesis cannot tell is JSON.
"""

from __future__ import annotations

import schemathesis

schemathesis.serializer.alias(
    "application/vnd.docker.distribution.manifest.v1+prettyjws", "application/json"
)
