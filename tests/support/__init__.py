"""Helpers of the tests (not tests themselves): every helper module lives here.

``servers``: registry processes (dockyard or distribution) on loopback.
``api``, ``manifests``: client-side helpers of the black-box API tests.
``auth``: a CA, htpasswd files, the token issuer as a process, JWT minting.
``interop``: the real command-line clients (skopeo, umoci, buildah, oras, ...).
``backends``: moto's S3 server, a line-cutting TCP proxy, registries on S3.
``azure_gcs``: Azurite and fake-gcs-server, and registries on them (fixtures).
``net``: free ports, waiting for a server to answer, stopping process groups, servers on
loopback and the fixtures' bookkeeping of them. ``redis``: a real redis-server.
``data``: test data.
"""
