"""The node's host lock and record: a second node waits for the first, and the record a node
leaves reads back as the state it captured."""

from __future__ import annotations

import fcntl
import json
from pathlib import Path

import pytest

from syncjob_devtools.localnode import host


def test_the_record_reads_back_as_the_captured_state() -> None:
    state = host.HostState(
        programs=frozenset({"12 kubelet"}),
        mounts=frozenset({"/", "/proc"}),
        netns=frozenset(),
        links=frozenset({"lo", "eth0"}),
        rules=frozenset({"iptables filter -A INPUT -j ACCEPT"}),
        cgroups=frozenset({"pids/user.slice"}),
        sysctls=(("net/ipv4/ip_forward", "0"), ("net/bridge/bridge-nf-call-iptables", None)),
    )
    assert host.HostState.from_json(json.loads(json.dumps(state.to_json()))) == state


def test_a_second_node_waits_for_the_lock_and_takes_it_once_free(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(host, "HOST_DIR", tmp_path)
    monkeypatch.setattr(host, "LOCK", tmp_path / "lock")
    monkeypatch.setattr(host, "LOCK_WAIT_SECONDS", 1.5)
    with (tmp_path / "lock").open("a") as first:
        fcntl.flock(first, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(host.HostError, match="another node held"):
            host._hold_node_lock()
    second = host._hold_node_lock()
    second.close()
