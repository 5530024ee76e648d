"""The rados driver against a real single-node Ceph cluster (tests/support/ceph.py): the
driver contract, and what only RADOS does (stripes, omaps, sizes saved on close).

The contract tests are those of tests/unit/test_driver_contract.py, run with this module's
``driver`` fixture: each test gets its own RADOS namespace in the session's pool, and a
stripe size of 64 KiB, so small files already span several stripes.
"""

from __future__ import annotations

import os
import uuid
from typing import Any

import pytest
from tests.support import ceph as fixtures
from tests.support.ceph import CephCluster
from tests.unit.test_driver_contract import contract, read_all, run, write_file

from dockyard.storage.drivers.base import CheckedDriver, StorageDriver
from dockyard.storage.drivers.factory import DriverConfigError, create_driver
from dockyard.storage.drivers.rados import RadosDriver, RadosParameters

KiB = 1 << 10
CHUNK = 64 * KiB

ceph_cluster = fixtures.ceph_cluster  # the session's cluster

globals().update(contract())


@pytest.fixture
def params(ceph_cluster: CephCluster) -> dict[str, Any]:
    return {
        "poolname": ceph_cluster.pool,
        "conffile": str(ceph_cluster.conf),
        "namespace": f"test-{uuid.uuid4().hex[:12]}",
        "chunksize": CHUNK,
    }


@pytest.fixture
def driver(params: dict[str, Any]) -> CheckedDriver:
    return CheckedDriver(RadosDriver(RadosParameters(params)))


def test_satisfies_the_protocol(driver: CheckedDriver) -> None:
    assert isinstance(driver.inner, StorageDriver)
    assert driver.name == "rados"
