"""R1.7: the client-certificate header is taken only from the configured proxy addresses,
however the listener spells them."""

from __future__ import annotations

import ipaddress

from server.http.client_auth import is_trusted_proxy

PROXIES = (ipaddress.ip_network("127.0.0.1/32"), ipaddress.ip_network("2001:db8::/64"))


def test_r1_7_a_proxy_seen_through_a_dual_stack_listener_is_recognised() -> None:
    assert is_trusted_proxy("127.0.0.1", PROXIES)
    assert is_trusted_proxy("::ffff:127.0.0.1", PROXIES)  # the same proxy on "::"
    assert is_trusted_proxy("2001:db8::5", PROXIES)


def test_r1_7_a_proxy_configured_in_mapped_form_still_matches() -> None:
    mapped = (ipaddress.ip_network("::ffff:10.0.0.0/104"),)
    assert is_trusted_proxy("::ffff:10.1.2.3", mapped)
    assert not is_trusted_proxy("::ffff:11.1.2.3", mapped)


def test_r1_7_anyone_else_is_not_a_proxy() -> None:
    for other in ("127.0.0.2", "::ffff:127.0.0.2", "::1", "2001:db8:1::5", "", None, "x"):
        assert not is_trusted_proxy(other, PROXIES), other
    assert not is_trusted_proxy("127.0.0.1", ())
