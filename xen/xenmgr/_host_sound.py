"""The host's sound cards on ``/host`` (a mixin of the host object), and the parsers of what
ALSA shows of them (pure functions).

* ``list_sound_cards``: the cards of ``/proc/asound/cards`` (``ManagerSettings.asound_dir``),
  each ``id`` (the card's number) and ``name``; no ALSA on the host (no such file): ``[]``;
* ``list_playback_devices`` / ``list_capture_devices``: the PCM devices of
  ``/proc/asound/pcm`` that play back / capture, each ``id`` (``CC-DD``), ``name`` and
  ``card`` (its number);
* ``list_sound_card_controls(card)``, ``get_sound_card_control(card, control)``,
  ``set_sound_card_control(card, control, value)``: the card's simple mixer controls through
  ``amixer`` (alsa-utils; the original ran its own ``audio_helper``), each ``name``,
  ``direction`` (``p`` playback, ``c`` capture, ``""`` neither), ``type`` (``volume``,
  ``switch`` or ``enum``) and ``value`` (``<n>% on|off`` for a volume, ``on|off`` for a
  switch, the item for an enum). A value ``<n>% on|off`` is set as level and switch, anything
  else as given. Without ``amixer`` they answer ``NotSupported`` naming it. A card that is not
  a word, or a control that is empty or starts with ``-``, is refused naming it; amixer's own
  failure (an unknown card or control) is an error with its message.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from typing import TYPE_CHECKING

from rpc.dbus import NOT_SUPPORTED, Call, DBusError, dbus_method
from xen.xenmgr._errors import plain

if TYPE_CHECKING:
    from xen.xenmgr._context import ServiceContext

__all__ = ["HostSoundMethods", "parse_amixer", "parse_cards", "parse_pcm"]

HOST = "com.citrix.xenclient.xenmgr.host"
AMIXER_TIMEOUT = 10.0
_CARD = re.compile(r"\s*(\w+)\s+\[.*\]: (.+)")
_CONTROL = re.compile(r"Simple mixer control '(.*)',(\d+)")
_LEVEL = re.compile(r"\[(\d+)%\]")
_SWITCH = re.compile(r"\[(on|off)\]")
_ITEM = re.compile(r"Item0: '(.*)'")
_SET_LEVEL = re.compile(r"([0-9]+%) (on|off)")


def parse_cards(text: str) -> list[dict[str, str]]:
    """The cards of ``/proc/asound/cards`` (``" 0 [PCH  ]: HDA-Intel - HDA Intel PCH"``: the
    card lines; the lines under them are skipped)."""
    out = []
    for line in text.splitlines():
        match = _CARD.fullmatch(line.rstrip())
        if match:
            out.append({"id": match.group(1), "name": match.group(2).strip()})
    return out


def parse_pcm(text: str) -> list[tuple[dict[str, str], bool, bool]]:
    """The PCM devices of ``/proc/asound/pcm`` (``"00-00: ALC892 Analog : ALC892 Analog :
    playback 1 : capture 1"``): (their map, plays back, captures)."""
    out = []
    for line in text.splitlines():
        fields = [f.strip() for f in line.split(":")]
        if len(fields) < 3 or not re.fullmatch(r"\d+-\d+", fields[0]):
            continue
        card = str(int(fields[0].split("-")[0]))
        rest = fields[3:]
        out.append(({"id": fields[0], "name": fields[1], "card": card},
                    "playback 1" in rest, "capture 1" in rest))
    return out


def parse_amixer(text: str) -> list[dict[str, str]]:
    """The simple controls of ``amixer scontents`` / ``amixer sget`` output."""
    controls: list[dict[str, str]] = []
    caps: list[str] = []
    current: dict[str, str] | None = None

    def finish() -> None:
        if current is None:
            return
        playback = any(c.startswith("p") for c in caps)
        capture = any(c.startswith("c") for c in caps)
        current["direction"] = "p" if playback else "c" if capture else ""
        current["type"] = ("volume" if any(c.endswith("volume") for c in caps)
                           else "switch" if any(c.endswith("switch") for c in caps)
                           else "enum")
        controls.append(current)

    for raw in text.splitlines():
        line = raw.strip()
        match = _CONTROL.fullmatch(line)
        if match:
            finish()
            current, caps = {"name": match.group(1), "value": ""}, []
        elif current is None:
            continue
        elif line.startswith("Capabilities:"):
            caps = line.split(":", 1)[1].split()
        elif not current["value"] and (_LEVEL.search(line) or _SWITCH.search(line)):
            level, switch = _LEVEL.search(line), _SWITCH.search(line)
            current["value"] = " ".join(
                ([f"{level.group(1)}%"] if level else []) + ([switch.group(1)] if switch else []))
        elif not current["value"] and _ITEM.search(line):
            item = _ITEM.search(line)
            assert item is not None
            current["value"] = item.group(1)
    finish()
    return controls


def _amixer(card: str, *args: str) -> str:
    if not re.fullmatch(r"\w{1,32}", card):
        raise plain(f"sound card {card!r} is not a card number or id")
    program = shutil.which("amixer")
    if program is None:
        raise DBusError(NOT_SUPPORTED, "not implemented: sound card controls need amixer "
                        "(alsa-utils), which this host does not have")
    try:
        done = subprocess.run([program, "-c", card, *args], capture_output=True, text=True,
                              timeout=AMIXER_TIMEOUT, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        raise plain(f"amixer failed: {exc}") from None
    if done.returncode != 0:
        raise plain(f"amixer -c {card}: {done.stderr.strip() or done.returncode}")
    return done.stdout


def _control(name: str) -> str:
    if not name or name.startswith("-") or "\n" in name:
        raise plain(f"sound card control {name!r} is not a control name")
    return name


class HostSoundMethods:
    """See the module docstring (mixed into the host object)."""

    ctx: ServiceContext

    def _proc(self, name: str) -> str:
        try:
            with open(os.path.join(self.ctx.settings.asound_dir, name)) as f:
                return f.read()
        except OSError:
            return ""

    @dbus_method(HOST, "list_sound_cards")
    def list_sound_cards(self, call: Call) -> list[dict[str, str]]:
        return parse_cards(self._proc("cards"))

    @dbus_method(HOST, "list_playback_devices")
    def list_playback_devices(self, call: Call) -> list[dict[str, str]]:
        return [d for d, playback, _capture in parse_pcm(self._proc("pcm")) if playback]

    @dbus_method(HOST, "list_capture_devices")
    def list_capture_devices(self, call: Call) -> list[dict[str, str]]:
        return [d for d, _playback, capture in parse_pcm(self._proc("pcm")) if capture]

    @dbus_method(HOST, "list_sound_card_controls")
    def list_sound_card_controls(self, call: Call, card: str) -> list[dict[str, str]]:
        return parse_amixer(_amixer(card, "scontents"))

    @dbus_method(HOST, "get_sound_card_control")
    def get_sound_card_control(self, call: Call, card: str, control: str) -> str:
        found = parse_amixer(_amixer(card, "sget", _control(control)))
        return found[0]["value"] if found else ""

    @dbus_method(HOST, "set_sound_card_control")
    def set_sound_card_control(self, call: Call, card: str, control: str, value: str) -> None:
        match = _SET_LEVEL.fullmatch(value.strip())
        args = list(match.groups()) if match else [value]
        _amixer(card, "sset", _control(control), *args)
