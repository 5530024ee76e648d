"""The campaigns run on the integration tests' backends (moto's S3 server, ...)."""

from tests.integration.conftest import (  # noqa: F401 (fixtures, found by name)
    moto_server,
    s3_bucket,
    s3_registry_factory,
)
