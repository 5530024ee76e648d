"""The campaigns run on the integration tests' backends (moto's S3 server, Ceph, ...)."""

from tests.integration.conftest import (  # noqa: F401 (fixtures, found by name)
    ceph_cluster,
    moto_server,
    s3_bucket,
    s3_registry_factory,
)
