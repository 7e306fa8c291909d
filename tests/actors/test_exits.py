"""Exit reasons: the crash traceback text is the standard library's, frame caching or not;
typed services check a protocol as ``isinstance`` does, remembered or not."""

from __future__ import annotations

import sys
import traceback
from types import TracebackType
from typing import Protocol, runtime_checkable

import pytest

import actors
from actors import (
    Actor,
    ActorContext,
    Crashed,
    ServiceUnavailable,
    reason_from_exception,
    service,
)
from actors._exits import format_traceback


def _caught(func: object) -> tuple[BaseException, TracebackType | None]:
    try:
        func()  # type: ignore[operator]
    except BaseException as exc:  # the test wants any exception
        return exc, exc.__traceback__
    raise AssertionError("did not raise")


def _inner(value: int) -> int:
    return {"a": 1}[
        str(value)
    ]


def _middle(value: int) -> int:
    return _inner(value) + 1


def _plain() -> None:
    _middle(3)


def _chained() -> None:
    try:
        _middle(1)
    except KeyError as exc:
        raise RuntimeError("wrapped") from exc


def _implicit() -> None:
    try:
        _middle(1)
    except KeyError:
        raise ValueError("while handling")  # noqa: B904  # the implicit context is the case


def _recurse(n: int) -> None:
    if n == 0:
        raise OverflowError("deep")
    _recurse(n - 1)


def _noted() -> None:
    exc = TypeError("with a note")
    exc.add_note("a note for the reader")
    raise exc


class _OwnError(Exception):
    """An exception class outside builtins: its module is named in the last line."""


class _Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no text")


def _syntax() -> None:
    compile("x = (", "<text>", "exec")


def _stdlib(exc: BaseException, tb: TracebackType | None) -> str:
    return "".join(traceback.format_exception(type(exc), exc, tb))


@pytest.mark.parametrize("func", [_plain, _chained, _implicit, lambda: _recurse(30), _noted,
                                  lambda: (_ for _ in ()).throw(SystemExit(3)),
                                  lambda: (_ for _ in ()).throw(_OwnError("mine")),
                                  lambda: (_ for _ in ()).throw(_OwnError()),
                                  lambda: (_ for _ in ()).throw(_Unprintable()), _syntax])
def test_format_traceback_is_the_standard_librarys(func: object) -> None:
    exc, tb = _caught(func)
    expected = _stdlib(exc, tb)
    assert format_traceback(exc, tb) == expected
    assert format_traceback(exc, tb) == expected  # again, from the frame cache


def test_a_traceback_from_a_later_frame_and_none() -> None:
    exc, tb = _caught(_plain)
    assert tb is not None and tb.tb_next is not None
    assert format_traceback(exc, tb.tb_next) == _stdlib(exc, tb.tb_next)
    assert format_traceback(exc, None) == _stdlib(exc, None)


def test_the_same_line_reached_twice_is_told_apart() -> None:
    """Two crashes at one line, from different callers: each text names its own stack."""
    first, tb1 = _caught(_plain)
    second, tb2 = _caught(lambda: _middle(4))
    one, two = format_traceback(first, tb1), format_traceback(second, tb2)
    assert one == _stdlib(first, tb1) and two == _stdlib(second, tb2)
    assert "in _plain" in one and "in _plain" not in two


def test_a_traceback_limit_is_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    exc, tb = _caught(_plain)
    monkeypatch.setattr(sys, "tracebacklimit", 1, raising=False)
    assert format_traceback(exc, tb) == _stdlib(exc, tb)
    assert format_traceback(exc, tb).count('File "') == 1


def test_reason_from_exception_carries_the_text() -> None:
    exc, tb = _caught(_plain)
    reason = reason_from_exception(exc, tb, where="on_start")
    assert reason == Crashed("KeyError: '3'", _stdlib(exc, tb), "on_start")


# -- typed services: the protocol check remembered per type -----------------------------------


@runtime_checkable
class _Greeter(Protocol):
    name: str

    def greet(self) -> str: ...


class _Hello:
    name = "hello"

    def greet(self) -> str:
        return "hello"


class _Late:
    """Conforms only once an instance sets ``name``: never remembered as conforming."""

    def __init__(self, name: str | None) -> None:
        if name is not None:
            self.name = name

    def greet(self) -> str:
        return "late"


class _Publisher(Actor):
    def __init__(self, handle: object) -> None:
        super().__init__()
        self.handle = handle

    def published(self) -> object:
        return self.handle


def _published(handle: object) -> str:
    name = f"/test-service-{id(handle)}"
    actor = _Publisher.start_object(ActorContext(name=name), handle)
    assert actor.wait_started(5)
    return name


def test_service_checks_protocols_as_isinstance_does() -> None:
    names = [_published(h) for h in (_Hello(), _Hello(), _Late("x"), _Late(None), object())]
    try:
        for _ in range(2):  # the second time from what was remembered
            assert service(names[0], _Greeter).greet() == "hello"
            assert service(names[1], _Greeter).greet() == "hello"
            assert service(names[2], _Greeter).greet() == "late"
            with pytest.raises(ServiceUnavailable):
                service(names[3], _Greeter)  # the same type, without the member
            with pytest.raises(ServiceUnavailable):
                service(names[4], _Greeter)
            with pytest.raises(ServiceUnavailable):
                service(names[0], _Late)  # a plain class: isinstance
    finally:
        publishers = [actors.actor_of(actors.resolve(name)) for name in names]
        for publisher in publishers:
            publisher.request_stop()
        for publisher in publishers:  # gone before the test ends (the suite checks)
            assert publisher.wait_dead(10)
