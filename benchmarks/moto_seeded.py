#!/usr/bin/env python3
"""moto's S3 server with bench_index.py's trees put into its memory before it listens.

Uploading 10,000 repositories or 100,000 tags (some 200,000 objects) through the S3
API takes longer than the benchmark itself: moto takes a few hundred PUTs a second on
this machine. Each object here is put by moto's own ``put_object``, the call its PUT
handler makes, so it is what a PUT of the same key and bytes leaves (content, MD5
entity tag); both registries then read the buckets through the S3 API only.

    python3 benchmarks/moto_seeded.py PLAN.json -H 127.0.0.1 -p PORT

``PLAN.json``: ``[{"bucket": NAME, "repos": N, "tags": [COUNT, ...]}, ...]``, one
bucket per workload (moto scans every key of a bucket on each listing, so a workload
in its own bucket pays only for its own keys).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_index import layout


def seed(plan: list[dict[str, object]]) -> None:
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends

    backend = s3_backends[DEFAULT_ACCOUNT_ID]["aws"]
    for workload in plan:
        bucket = str(workload["bucket"])
        repos = workload["repos"]
        tags = workload["tags"]
        assert isinstance(repos, int) and isinstance(tags, list)
        started = time.perf_counter()
        backend.create_bucket(bucket, "us-east-1")
        count = 0
        for key, data in layout(repos, [int(t) for t in tags]):
            backend.put_object(bucket, key, data)
            count += 1
        print(f"seeded {bucket}: {count:,} objects in {time.perf_counter() - started:.1f}s",
              file=sys.stderr, flush=True)


def main() -> None:
    seed(json.loads(Path(sys.argv[1]).read_text()))
    from moto.server import main as serve

    serve(sys.argv[2:])


if __name__ == "__main__":
    main()
