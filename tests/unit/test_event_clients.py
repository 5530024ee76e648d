"""The client part of events (``request`` but its id, ``actor``): made once per connection
while its requests send the same, made again when they do not."""

from __future__ import annotations

from dockyard.api.context import UrlSettings
from dockyard.api.params import ClientKey, _client_record

URLS = UrlSettings()


def key(peer: tuple[str, int], connection: tuple[str, object] | None = None,
        useragent: str = "skopeo/1.9", forwarded_for: str = "") -> ClientKey:
    """A request's key as the API takes it: new strings each time, as parsed headers are."""
    host = "".join(["registry", ":5000"])
    return ("".join(["GE", "T"]), host, connection or ("http", peer), None, URLS,
            "".join([useragent]), forwarded_for, "", "", "")


def test_a_connection_keeps_its_record_while_its_requests_send_the_same() -> None:
    connection = ("http", ("10.0.0.1", 4242))
    first = _client_record(key(("10.0.0.1", 4242), connection))
    assert _client_record(key(("10.0.0.1", 4242), connection)) is first
    assert (first.addr, first.host, first.method, first.useragent, first.base_url) == (
        "10.0.0.1:4242", "registry:5000", "GET", "skopeo/1.9", "http://registry:5000")


def test_a_changed_header_makes_a_new_record() -> None:
    connection = ("http", ("10.0.0.2", 4242))
    plain = _client_record(key(("10.0.0.2", 4242), connection))
    other = _client_record(key(("10.0.0.2", 4242), connection, useragent="crane"))
    proxied = _client_record(key(("10.0.0.2", 4242), connection, forwarded_for="192.0.2.7"))
    assert other.useragent == "crane" and other.addr == "10.0.0.2:4242"
    assert proxied.addr == "192.0.2.7" and proxied.useragent == "skopeo/1.9"
    again = _client_record(key(("10.0.0.2", 4242), connection))
    assert again == plain and again.useragent == "skopeo/1.9"


def test_connections_do_not_share_records() -> None:
    one = _client_record(key(("10.0.0.3", 1)))
    two = _client_record(key(("10.0.0.3", 2)))
    assert (one.addr, two.addr) == ("10.0.0.3:1", "10.0.0.3:2")
    assert _client_record(key(("10.0.0.3", 1))).addr == "10.0.0.3:1"
