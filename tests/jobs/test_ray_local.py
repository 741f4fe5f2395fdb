"""A local Ray instance started by FairLin (no address): every socket of every process it starts listens on
127.0.0.1 (Ray has no authentication: whoever reaches a port can run code)."""

import ipaddress

import pytest

from fairlin_core.jobs.ray_executor import RaySession

ray = pytest.importorskip("ray")
psutil = pytest.importorskip("psutil")


def _listening(process):
    """(ip, port) of every TCP socket ``process`` listens on ([] once it is gone)."""
    try:
        return [c.laddr[:2] for c in process.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN]
    except psutil.NoSuchProcess:
        return []


def _loopback(ip):
    address = ipaddress.ip_address(ip)
    return (getattr(address, "ipv4_mapped", None) or address).is_loopback  # ::ffff:127.0.0.1 is loopback too


def test_a_local_ray_instance_listens_on_loopback_only():
    assert not ray.is_initialized()
    me = psutil.Process()
    before = {p.pid for p in me.children(recursive=True)}
    own = set(_listening(me))
    session = RaySession()
    try:
        assert session.owned
        assert ray.get(session.board.snapshot.remote(["x"]))["x"]["attempts"] == []  # an actor's worker is up
        ray.get(ray.remote(lambda: 1).remote())  # and a task's
        started = [p for p in me.children(recursive=True) if p.pid not in before]
        sockets = {f"driver {ip}:{port}": ip for ip, port in set(_listening(me)) - own}
        for process in started:
            sockets.update({f"{process.name()} ({process.pid}) {ip}:{port}": ip for ip, port in _listening(process)})
        names = {process.name() for process in started if _listening(process)}
    finally:
        session.close()
    assert {"gcs_server", "raylet"} <= names and len(sockets) >= 6, sockets  # Ray's servers were all looked at
    exposed = sorted(where for where, ip in sockets.items() if not _loopback(ip))
    assert exposed == [], exposed
    assert not ray.is_initialized()
