"""Crash campaign (issue 8): kill -9 at seeded points during 50 concurrent pushes.

Each round (see :mod:`tests.support.crash`) runs 50 pushes at once -- monolithic,
chunked, chunked with an immediate retry, manifests with shared layers -- against a real
``dockyard serve`` process, SIGKILLs it a few times at seeded points and starts it again
on the same storage, while the pushes resume. Then, with the registry left alone:

* no push saw an anomaly (a 5xx, an upload lost after an interrupted PATCH, a Range
  going back behind an acknowledged offset), and every push got its 201 in the end;
* every 201 pulls back byte for byte (blobs by digest; manifests by digest and tag);
* every blob in storage hashes to its path, and no link (``_layers``,
  ``_manifests/revisions``, tags) names a missing blob (:mod:`tests.support.layout`);
  on RADOS, also no directory is hidden from walks and no name is left on removed
  stripes (``RadosFiles.hierarchy_problems``).

The seed is printed; ``DOCKYARD_CRASH_SEED=<seed>`` replays its pushes and kill points
(the timing between processes is the machine's). ``DOCKYARD_CRASH_ROUNDS=<n>`` (default
1) runs n rounds, with seeds seed, seed+1, ..., on the same storage.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest
from tests.integration.conftest import S3RegistryFactory
from tests.support.api import TARGET
from tests.support.backends import MotoServer
from tests.support.ceph import CephCluster, RadosFiles, RadosRegistryProcess
from tests.support.crash import (
    ROOMY,
    SMALL,
    KillOne,
    KillSwitch,
    Sizes,
    run_round,
    verify,
)
from tests.support.layout import BucketFiles, DirectoryFiles, StoredFiles, check_layout
from tests.support.net import child_pids

if TYPE_CHECKING:
    from tests.support.servers import RegistryProcess

SEED_ENV = "DOCKYARD_CRASH_SEED"
ROUNDS_ENV = "DOCKYARD_CRASH_ROUNDS"
ROUNDS = int(os.environ.get(ROUNDS_ENV) or 1)
PUSHES = 50
KILLS_PER_ROUND = 3

pytestmark = [
    pytest.mark.skipif(
        TARGET != "dockyard",
        reason="dockyard's resumption after a crash (distribution keeps an interrupted "
        "chunk's bytes and refuses the next PATCH at the acknowledged offset)",
    ),
    # A round takes 10-60 s, depending on the backend and how busy the machine is.
    pytest.mark.timeout(300 + 300 * ROUNDS),
]


def _seeds() -> list[int]:
    given = os.environ.get(SEED_ENV)
    base = int(given) if given else random.SystemRandom().randrange(1 << 32)
    return [base + n for n in range(ROUNDS)]


def campaign(server: KillSwitch, files: StoredFiles, prefix: str, sizes: Sizes = ROOMY,
             kill_one: KillOne | None = None) -> None:
    """Run the rounds against ``server``, checking everything after each."""
    for seed in _seeds():
        began = time.monotonic()
        print(f"crash campaign on {prefix}: replay with {SEED_ENV}={seed} {ROUNDS_ENV}=1")
        result = asyncio.run(run_round(server, seed, pushes=PUSHES, kills=KILLS_PER_ROUND,
                                       prefix=f"{prefix}-{seed}", sizes=sizes,
                                       kill_one=kill_one))
        print(f"{result.summary()} ({time.monotonic() - began:.1f}s)")
        where = f"{SEED_ENV}={seed}"
        assert not result.anomalies, "\n".join([where, *result.anomalies])
        assert result.kills, (where, "no kill landed during the pushes")
        assert result.pushed == PUSHES, where
        missing = asyncio.run(verify(server.url, result.created))
        assert not missing, "\n".join([where, *missing])
        report = check_layout(files)
        if isinstance(files, RadosFiles):
            report.problems += files.hierarchy_problems()
        print(f"storage: {report.blobs} blobs, {report.links} links, "
              f"{report.temporary} temporary files left by kills "
              f"({time.monotonic() - began:.1f}s with the checks)")
        assert not report.problems, "\n".join([where, *report.problems])


def _kill_a_worker(server: RegistryProcess) -> KillOne:
    def kill(rng: random.Random) -> None:
        assert server.pid is not None
        workers = child_pids(server.pid)
        if workers:
            os.kill(rng.choice(workers), signal.SIGKILL)

    return kill


def test_crash_campaign_filesystem(registry_factory: Callable[..., RegistryProcess]) -> None:
    server = registry_factory()
    campaign(server, DirectoryFiles(server.root), "fs")


def test_crash_campaign_filesystem_two_workers(
    registry_factory: Callable[..., RegistryProcess],
) -> None:
    """--workers 2: each kill takes one worker (the supervisor replaces it) or all."""
    server = registry_factory(extra_args=["--workers", "2"])
    campaign(server, DirectoryFiles(server.root), "workers", kill_one=_kill_a_worker(server))


@pytest.mark.interop
def test_crash_campaign_s3(
    s3_registry_factory: S3RegistryFactory, moto_server: MotoServer, s3_bucket: str
) -> None:
    # moto reports every multipart upload as initiated in 2010, so upload purging at
    # each restart would abort the uploads in progress (real S3 dates them truly).
    server = s3_registry_factory(
        s3_bucket, overrides={"storage": {"maintenance": {"uploadpurging": {"enabled": False}}}}
    )
    # Small blobs: every chunk costs a dozen requests to moto, which is slow.
    campaign(server, BucketFiles(moto_server.client(), s3_bucket), "s3", SMALL)


@pytest.mark.interop
def test_crash_campaign_rados(
    tmp_path_factory: pytest.TempPathFactory, ceph_cluster: CephCluster, registry_secret: str
) -> None:
    """On RADOS (the session's Ceph cluster), with upload purging on: RADOS objects carry
    true times."""
    params = {"poolname": ceph_cluster.pool, "conffile": str(ceph_cluster.conf),
              "namespace": f"crash-{uuid.uuid4().hex[:12]}"}
    with RadosRegistryProcess(
        tmp_path_factory.mktemp("crash-rados"), rados=params, secret=registry_secret
    ) as server:
        campaign(server, RadosFiles(params), "rados")
