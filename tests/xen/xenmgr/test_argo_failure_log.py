"""The Argo firewall logs a failure to apply its rules once, not at every VM change: a host
without ``viptables`` would otherwise log an ERROR per state change (seen in the lab)."""

from __future__ import annotations

import logging

from xen.xenmgr._argo_firewall import RepeatedFailure

MISSING = "viptables is not installed: Argo rules not applied"


def test_the_same_failure_is_an_error_once_then_debug() -> None:
    failed = RepeatedFailure()
    assert [failed.level(MISSING) for _ in range(4)] == [logging.ERROR] + [logging.DEBUG] * 3


def test_a_different_failure_is_an_error_again() -> None:
    failed = RepeatedFailure()
    assert failed.level(MISSING) == logging.ERROR
    assert failed.level("viptables -A ...: exit status 2") == logging.ERROR
    assert failed.level(MISSING) == logging.ERROR


def test_after_a_success_the_failure_is_news_again() -> None:
    failed = RepeatedFailure()
    assert failed.level(MISSING) == logging.ERROR
    failed.clear()
    assert failed.level(MISSING) == logging.ERROR
    assert failed.level(MISSING) == logging.DEBUG
