"""vbd device numbers and xenbus states."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from xen.xenops._devid import (
    EXTENDED_FLAG,
    DeviceNameError,
    XenbusState,
    devid_to_name,
    major_minor,
    name_to_devid,
    physical_device_string,
)


@pytest.mark.parametrize(
    ("name", "devid"),
    [
        ("xvda", 202 * 256),
        ("xvdb", 202 * 256 + 16),
        ("xvda1", 202 * 256 + 1),
        ("xvdp15", 202 * 256 + 15 * 16 + 15),
        ("sda", 8 * 256),
        ("sdb2", 8 * 256 + 18),
        ("hda", 3 * 256),
        ("hdb", 3 * 256 + 64),
        ("hdc", 22 * 256),
        ("hdd", 22 * 256 + 64),
        ("hde", 33 * 256),
        ("hdt", 91 * 256 + 64),
        ("hda1", 3 * 256 + 1),
        ("51712", 51712),
        ("0", 0),
    ],
)
def test_known_names(name: str, devid: int) -> None:
    assert name_to_devid(name) == devid


def test_extended_xvd_names() -> None:
    assert name_to_devid("xvdq") == EXTENDED_FLAG | (16 << 8)
    assert name_to_devid("xvdz") == EXTENDED_FLAG | (25 << 8)
    assert name_to_devid("xvdaa") == EXTENDED_FLAG | (26 << 8)
    assert name_to_devid("xvdaa3") == EXTENDED_FLAG | (26 << 8) | 3
    assert name_to_devid("xvda16") == EXTENDED_FLAG | 16  # partition >= 16 needs it too
    assert devid_to_name(EXTENDED_FLAG | (26 << 8) | 3) == "xvdaa3"


@pytest.mark.parametrize(
    "bad",
    ["", "xvd", "xvdA", "sdq", "sda16", "hdu", "hda64", "vda", "xvda01", "007", "xvd a",
     "x" * 100, "4294967296"],
)
def test_bad_names_raise_named_error(bad: str) -> None:
    with pytest.raises(DeviceNameError):
        name_to_devid(bad)


@pytest.mark.parametrize("bad", [-1, 1 << 32, 7 * 256, 1 << 29 | 1 << 28])
def test_bad_devids_raise(bad: int) -> None:
    with pytest.raises(DeviceNameError):
        devid_to_name(bad)


def _names() -> st.SearchStrategy[str]:
    part = st.integers(min_value=0, max_value=15).map(lambda p: str(p) if p else "")
    letters = "abcdefghijklmnop"
    xvd = st.tuples(st.sampled_from(letters), part).map(lambda t: "xvd" + t[0] + t[1])
    sd = st.tuples(st.sampled_from(letters), part).map(lambda t: "sd" + t[0] + t[1])
    hd_part = st.integers(min_value=0, max_value=63).map(lambda p: str(p) if p else "")
    hd = st.tuples(st.sampled_from("abcdefghijklmnopqrst"), hd_part).map(
        lambda t: "hd" + t[0] + t[1]
    )
    ext_letters = st.integers(min_value=16, max_value=2000).map(_letters)
    ext = st.tuples(ext_letters, st.integers(min_value=0, max_value=255)).map(
        lambda t: "xvd" + t[0] + (str(t[1]) if t[1] else "")
    )
    return st.one_of(xvd, sd, hd, ext)


def _letters(index: int) -> str:
    out = ""
    n = index + 1
    while n:
        n, r = divmod(n - 1, 26)
        out = chr(97 + r) + out
    return out


@given(_names())
def test_name_round_trip(name: str) -> None:
    assert devid_to_name(name_to_devid(name)) == name


@given(_names(), _names())
def test_distinct_names_have_distinct_devids(a: str, b: str) -> None:
    if a != b:
        assert name_to_devid(a) != name_to_devid(b)


@given(st.integers(min_value=1, max_value=1 << 31))
def test_plain_numbers_are_devids(n: int) -> None:
    assert name_to_devid(str(n)) == n


def test_major_minor_and_physical_device() -> None:
    assert major_minor("xvdb1") == (202, 17)
    assert major_minor("hdc") == (22, 0)
    assert physical_device_string(202, 17) == "ca:11"
    with pytest.raises(DeviceNameError):
        major_minor("xvdaa")
    with pytest.raises(DeviceNameError):
        major_minor("51712")


def test_xenbus_states() -> None:
    assert [int(s) for s in XenbusState] == list(range(7))
    assert XenbusState.parse("4") is XenbusState.CONNECTED
    assert XenbusState.CLOSING.to_xenstore() == "5"
    assert XenbusState.INIT_WAIT.description == "initwait"
    for bad in ("", "7", "-1", "x", "44"):
        with pytest.raises(ValueError):
            XenbusState.parse(bad)
