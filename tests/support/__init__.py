"""Helpers shared by the test folders (not tests themselves).

``net``: free ports, waiting for a server to answer, stopping process groups, servers on
loopback and the fixtures' bookkeeping of them. ``redis``: a real redis-server.
``data``: test data. ``routes``: the routes of the router, for tests that cover every one.
"""
