"""Actor URNs (actors/_urn.py): well-formed version-4 UUIDs, unique, a new prefix after fork."""

from __future__ import annotations

import os
import uuid

from actors import Actor
from actors._urn import new_urn


def test_a_urn_is_a_version_4_uuid() -> None:
    urn = new_urn()
    assert urn.startswith("urn:uuid:")
    value = uuid.UUID(urn.removeprefix("urn:uuid:"))
    assert value.version == 4 and value.variant == uuid.RFC_4122
    assert value.urn == urn


def test_urns_differ_and_so_do_their_tails() -> None:
    urns = [new_urn() for _ in range(10_000)]
    assert len(set(urns)) == len(urns)
    assert len({u[-8:] for u in urns}) == len(urns)


def test_an_actor_gets_one_and_its_ref_carries_it() -> None:
    one, two = Actor(), Actor()
    assert one.actor_urn != two.actor_urn
    assert one.actor_ref.actor_urn == one.actor_urn
    assert uuid.UUID(one.actor_urn.removeprefix("urn:uuid:")).version == 4


def test_a_forked_child_draws_its_own_prefix() -> None:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its URN and leave at once
        os.write(write, new_urn().encode())
        os._exit(0)
    os.close(write)
    try:
        child = os.read(read, 100).decode()
    finally:
        os.close(read)
        os.waitpid(pid, 0)
    assert child and child[:-16] != new_urn()[:-16]
