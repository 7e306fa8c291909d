"""Haskell's ``show`` for Double and String, reproduced exactly (xec prints through it).

`show_double` follows GHC's ``showFloat``: the shortest digits that identify the double
(``floatToDigits``, Burger and Dybvig's free-format algorithm, boundaries excluded), printed in
fixed notation when the decimal exponent is 0..7 (``0.1``, ``1.0``, ``1234567.0``) and
otherwise as ``d.ddde<n>`` (``1.0e-2``, ``1.0e7``); ``NaN``, ``Infinity``, ``-Infinity``,
``-0.0``.

`show_string` follows ``showLitString``: double quotes around; ``"`` and ``\\`` escaped;
``\\a \\b \\f \\n \\r \\t \\v`` by name; other controls by their ASCII names (``\\NUL``,
``\\SOH``, ... ``\\US``), ``\\DEL``; characters above 127 as a decimal escape (``\\233``); a
``\\&`` after a numeric escape followed by a digit, and after ``\\SO`` followed by ``H``.
`show_bytes` shows bytes as Haskell shows a ``Char8`` ByteString (each byte one character).
Pure and total.
"""

from __future__ import annotations

import math

__all__ = ["show_bytes", "show_double", "show_string"]

__pure__ = True  # a pure core: no I/O, no threads (tests/test_architecture.py)

_ASCII_NAMES = (
    "NUL SOH STX ETX EOT ENQ ACK BEL BS HT LF VT FF CR SO SI "
    "DLE DC1 DC2 DC3 DC4 NAK SYN ETB CAN EM SUB ESC FS GS RS US"
).split()
_NAMED = {7: "\\a", 8: "\\b", 9: "\\t", 10: "\\n", 11: "\\v", 12: "\\f", 13: "\\r"}

_MANTISSA_DIGITS = 53  # floatDigits for Double
_MIN_EXP = -1021 - _MANTISSA_DIGITS  # fst floatRange - floatDigits


def _decode(x: float) -> tuple[int, int]:
    """``decodeFloat``: x == mantissa * 2**exponent, mantissa < 2**53."""
    m, e = math.frexp(x)
    return int(m * (1 << _MANTISSA_DIGITS)), e - _MANTISSA_DIGITS


def float_to_digits(x: float) -> tuple[list[int], int]:
    """GHC ``floatToDigits 10`` for a finite x >= 0: digits and exponent, x = 0.d1d2.. * 10^e."""
    if x == 0:
        return [0], 0
    f0, e0 = _decode(x)
    shift = _MIN_EXP - e0
    f, e = (f0 >> shift, e0 + shift) if shift > 0 else (f0, e0)
    top = 1 << (_MANTISSA_DIGITS - 1)
    if e >= 0:
        be = 1 << e
        if f == top:
            r, s, m_up, m_dn = f * be * 4, 4, be * 2, be
        else:
            r, s, m_up, m_dn = f * be * 2, 2, be, be
    elif e > _MIN_EXP and f == top:
        r, s, m_up, m_dn = f * 4, (1 << (-e + 1)) * 2, 2, 1
    else:
        r, s, m_up, m_dn = f * 2, (1 << -e) * 2, 1, 1
    # k: the smallest n with r + m_up <= 10^n * s; start below it and step up.
    k = math.floor(math.log10(x)) - 1
    while True:
        if k >= 0:
            if r + m_up <= 10**k * s:
                break
        elif 10 ** (-k) * (r + m_up) <= s:
            break
        k += 1
    if k >= 0:
        s *= 10**k
    else:
        scale = 10 ** (-k)
        r, m_up, m_dn = r * scale, m_up * scale, m_dn * scale
    digits: list[int] = []
    while True:
        d, r = divmod(r * 10, s)
        m_up *= 10
        m_dn *= 10
        low, high = r < m_dn, r + m_up > s
        if low and not high:
            digits.append(d)
        elif high and not low:
            digits.append(d + 1)
        elif low and high:
            digits.append(d if r * 2 < s else d + 1)
        else:
            digits.append(d)
            continue
        return digits, k


def show_double(x: float) -> str:
    """Haskell ``show (x :: Double)``."""
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "-Infinity" if x < 0 else "Infinity"
    sign = "-" if x < 0 or math.copysign(1.0, x) < 0 else ""
    digits, e = float_to_digits(abs(x))
    ds = "".join(map(str, digits))
    if 0 <= e <= 7:
        if e == 0:
            return f"{sign}0.{ds}"
        whole = ds[:e].ljust(e, "0")
        frac = ds[e:] or "0"
        return f"{sign}{whole}.{frac}"
    if ds == "0":
        return f"{sign}0.0e0"
    return f"{sign}{ds[0]}.{ds[1:] or '0'}e{e - 1}"


def show_string(text: str) -> str:
    """Haskell ``show (text :: String)``."""
    out: list[str] = ['"']
    n = len(text)
    for i, c in enumerate(text):
        code = ord(c)
        nxt = text[i + 1] if i + 1 < n else ""
        if c == '"':
            out.append('\\"')
        elif c == "\\":
            out.append("\\\\")
        elif code > 127:
            out.append(f"\\{code}")
            if nxt.isascii() and nxt.isdigit():
                out.append("\\&")
        elif code == 127:
            out.append("\\DEL")
        elif code >= 32:
            out.append(c)
        elif code in _NAMED:
            out.append(_NAMED[code])
        elif code == 14:
            out.append("\\SO")
            if nxt == "H":
                out.append("\\&")
        else:
            out.append("\\" + _ASCII_NAMES[code])
    out.append('"')
    return "".join(out)


def show_bytes(data: bytes) -> str:
    """Haskell ``show`` of a ``Data.ByteString.Char8`` value."""
    return show_string(data.decode("latin-1"))
