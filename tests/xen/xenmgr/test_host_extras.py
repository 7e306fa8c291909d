"""/host's pure parts and its file-backed methods: ALSA's and amixer's texts, the licence
rule, the UI plugin directory, CD drive ids."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from xen.xenmgr._errors import XenmgrError
from xen.xenmgr._host_cd import parse_cd_id, sticky_node
from xen.xenmgr._host_extras import HostExtraMethods, license_hash, licensed
from xen.xenmgr._host_sound import parse_amixer, parse_cards, parse_pcm
from xen.xenmgr._settings import ManagerSettings

CARDS = """\
 0 [PCH            ]: HDA-Intel - HDA Intel PCH
                      HDA Intel PCH at 0xf7f10000 irq 130
 1 [Device         ]: USB-Audio - USB Audio Device
                      C-Media USB Audio Device at usb-0000:00:14.0-2, full speed
"""
PCM = """\
00-00: ALC892 Analog : ALC892 Analog : playback 1 : capture 1
00-03: HDMI 0 : HDMI 0 : playback 1
01-00: USB Audio : USB Audio : capture 1
"""
AMIXER = """\
Simple mixer control 'Master',0
  Capabilities: pvolume pvolume-joined pswitch pswitch-joined
  Playback channels: Mono
  Limits: Playback 0 - 87
  Mono: Playback 87 [100%] [0.00dB] [on]
Simple mixer control 'Capture',0
  Capabilities: cvolume cswitch
  Front Left: Capture 39 [62%] [12.00dB] [off]
  Front Right: Capture 39 [62%] [12.00dB] [off]
Simple mixer control 'Auto-Mute Mode',0
  Capabilities: enum
  Items: 'Disabled' 'Enabled'
  Item0: 'Enabled'
"""


def test_alsa_texts() -> None:
    assert parse_cards(CARDS) == [{"id": "0", "name": "HDA-Intel - HDA Intel PCH"},
                                  {"id": "1", "name": "USB-Audio - USB Audio Device"}]
    assert parse_cards("--- no soundcards ---") == []
    devices = parse_pcm(PCM + "garbage\n")
    assert [(d["id"], d["card"], p, c) for d, p, c in devices] == [
        ("00-00", "0", True, True), ("00-03", "0", True, False), ("01-00", "1", False, True)]
    assert devices[0][0]["name"] == "ALC892 Analog"
    assert parse_amixer(AMIXER) == [
        {"name": "Master", "direction": "p", "type": "volume", "value": "100% on"},
        {"name": "Capture", "direction": "c", "type": "volume", "value": "62% off"},
        {"name": "Auto-Mute Mode", "direction": "", "type": "enum", "value": "Enabled"}]


def test_the_licence_rule() -> None:
    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    expiry = "2027-01-01 00:00:00 +0000"
    good = license_hash("dev", "key", expiry)
    assert licensed("", "", "", "key", now) and licensed("", "", "local", "key", now)
    assert licensed(expiry, "dev", good, "key", now)
    assert not licensed(expiry, "dev", good, "other key", now)
    assert not licensed(expiry, "other device", good, "key", now)
    assert not licensed(expiry, "dev", good, "key", dt.datetime(2028, 1, 1, tzinfo=dt.UTC))
    assert not licensed("tomorrow", "dev", license_hash("dev", "key", "tomorrow"), "key", now)


def test_ui_plugins_stay_inside_their_directory(tmp_path: Path) -> None:
    plugins = tmp_path / "plugins"
    (plugins / "themes" / "dark").mkdir(parents=True)
    (plugins / "themes" / "light.js").write_text("")
    (tmp_path / "secret").mkdir()
    (plugins / "escape").symlink_to(tmp_path / "secret")
    host: Any = HostExtraMethods()
    host.ctx = SimpleNamespace(settings=ManagerSettings("unix:path=/x",
                                                        ui_plugins=str(plugins)))
    assert host.list_ui_plugins(None, "themes") == ["dark", "light.js"]
    assert host.list_ui_plugins(None, "none-such") == []
    for bad in ("..", "escape", "/etc"):
        with pytest.raises(XenmgrError, match="bad subdirectory"):
            host.list_ui_plugins(None, bad)


def test_cd_drive_ids() -> None:
    assert parse_cd_id(" 01:0:0:00 ") == "1:0:0:0"
    assert sticky_node("1:0:0:0") == "/xenmgr/cdassign/1_0_0_0"
    for bad in ("sr0", "1:0:0", "1:0:0:0:0", "a:b:c:d", ""):
        with pytest.raises(XenmgrError, match="not H:C:T:L"):
            parse_cd_id(bad)
