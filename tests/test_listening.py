"""`status` learns where the front door listens from the kernel's socket table, not from the state record."""

from __future__ import annotations

import socket

from appliance.listening import listening_hosts, reachable_from_lan

HEAD = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"


def test_live_loopback_listener():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        hosts = listening_hosts(port)
        assert hosts == {"127.0.0.1"} and not reachable_from_lan(hosts)
    assert listening_hosts(port) == set()


def test_any_address_is_the_lan(tmp_path):
    tcp, tcp6 = tmp_path / "tcp", tmp_path / "tcp6"
    # 0.0.0.0:4000 LISTEN, 127.0.0.1:4001 LISTEN, 127.0.0.1:4000 ESTABLISHED (not a listener)
    tcp.write_text(HEAD + "   0: 00000000:0FA0 00000000:0000 0A 0 0 0 0 0 0 0 0 1\n"
                          "   1: 0100007F:0FA1 00000000:0000 0A 0 0 0 0 0 0 0 0 2\n"
                          "   2: 0100007F:0FA0 0100007F:D431 01 0 0 0 0 0 0 0 0 3\n")
    tcp6.write_text(HEAD + "   0: 00000000000000000000000001000000:0FA2 00000000000000000000000000000000:0000 0A 0\n")
    assert listening_hosts(4000, (str(tcp), str(tcp6))) == {"0.0.0.0"}
    assert reachable_from_lan({"0.0.0.0"})
    assert listening_hosts(4001, (str(tcp), str(tcp6))) == {"127.0.0.1"}
    assert listening_hosts(4002, (str(tcp), str(tcp6))) == {"::1"}
    assert not reachable_from_lan({"::1", "127.0.0.1"})
