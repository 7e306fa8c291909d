"""How the shell shows results (pure: values in, text out).

The tree is drawn with each child's status, actor class, uptime, total restarts, restart type,
mailbox depth, messages handled, what it is busy with, and each supervisor's strategy and
restarts in the current window against its intensity (``!`` once the window is full: the next
failure escalates). Tables align their columns and right-align numbers. Values of unknown
shape (state snapshots, answers) are drawn as indented ``key: value`` lines. Every function
accepts what the control socket sends (maps, tuples for arrays) and tolerates missing fields:
a newer server never makes the shell raise.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = [
    "fmt_duration",
    "render_actors",
    "render_child",
    "render_error",
    "render_event",
    "render_stats",
    "render_table",
    "render_trace_entry",
    "render_tree",
    "render_value",
    "to_json",
    "tree_paths",
]

__pure__ = True  # a pure core: no I/O, no threads (tests/test_architecture.py)


def fmt_duration(seconds: Any) -> str:
    """``0.4s``, ``12.0s``, ``3.5m``, ``2.1h``, ``4.0d`` (``-`` for no value)."""
    if not isinstance(seconds, int | float) or isinstance(seconds, bool):
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    if seconds < 3600:
        return f"{seconds / 60:.1f}m"
    if seconds < 86400:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"


def _clock(at: Any) -> str:
    if not isinstance(at, int | float):
        return "--:--:--.---"
    return time.strftime("%H:%M:%S", time.localtime(at)) + f".{int(at * 1000) % 1000:03d}"


def render_table(headers: Sequence[str], rows: Sequence[Sequence[Any]],
                 numeric: Sequence[int] = ()) -> str:
    """Aligned columns; the columns whose indexes are in ``numeric`` are right-aligned."""
    cells = [[str(h) for h in headers], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = []
    for row in cells:
        parts = [cell.rjust(widths[i]) if i in numeric else cell.ljust(widths[i])
                 for i, cell in enumerate(row)]
        lines.append("  ".join(parts).rstrip())
    return "\n".join(lines)


def _activity(stats: Mapping[str, Any]) -> str:
    current = stats.get("current_message")
    if current:
        return f"busy {fmt_duration(stats.get('busy_for'))} in {current}"
    if stats.get("alive") is False:
        return "dead"
    return f"idle {fmt_duration(stats.get('idle_for'))}"


def render_actors(actors: Sequence[Mapping[str, Any]]) -> str:
    """The ``actors`` table: path, class, mailbox, messages, busy/idle, uptime."""
    rows = [(a.get("path", "?"), a.get("actor_class", "?"), a.get("mailbox_depth", "?"),
             a.get("processed", "?"), a.get("ask_errors", 0), _activity(a),
             fmt_duration(a.get("uptime"))) for a in actors]
    table = render_table(("PATH", "CLASS", "MBOX", "MSGS", "ASKERR", "ACTIVITY", "UP"), rows,
                         numeric=(2, 3, 4, 6))
    return f"{table}\n{len(rows)} actors"


def _exit_text(last: Any) -> str:
    if not isinstance(last, Mapping):
        return ""
    reason = str(last.get("reason", "?"))
    error = last.get("error")
    return f"{reason}: {error}" if error else reason


def _window(tree: Mapping[str, Any]) -> str:
    used, limit = tree.get("restarts_in_window", 0), tree.get("intensity", "?")
    full = "!" if isinstance(limit, int) and used >= limit else ""
    return (f"{tree.get('strategy', '?')} restarts {used}/{limit}{full} in "
            f"{tree.get('period', 0):g}s")


def _child_line(child: Mapping[str, Any]) -> str:
    stats = child.get("stats") or {}
    sub = child.get("tree")
    status = str(child.get("status", "?"))
    parts = [str(child.get("id", "?")), status.upper() if status != "running" else status]
    if stats:
        parts.append(str(stats.get("actor_class", "?")))
    if status == "running":
        parts.append(f"up {fmt_duration(child.get('uptime'))}")
    parts.append(f"restarts {child.get('restarts', 0)}")
    parts.append(str(child.get("restart", "?")))
    if sub is not None:
        parts.append(f"[{_window(sub)}]")
    if stats:
        parts.append(f"mbox {stats.get('mailbox_depth', '?')} msgs {stats.get('processed', '?')}")
        if stats.get("current_message"):
            parts.append(f"BUSY {fmt_duration(stats.get('busy_for'))} in "
                         f"{stats['current_message']}")
    last = _exit_text(child.get("last_exit"))
    if last and (status != "running" or child.get("restarts")):
        parts.append(f"(last exit: {last})")
    return "  ".join(parts)


def _children(tree: Mapping[str, Any], prefix: str, lines: list[str]) -> None:
    children = list(tree.get("children") or ())
    for n, child in enumerate(children):
        last = n == len(children) - 1
        lines.append(f"{prefix}{'└── ' if last else '├── '}{_child_line(child)}")
        sub = child.get("tree")
        if isinstance(sub, Mapping):
            _children(sub, prefix + ("    " if last else "│   "), lines)


def render_tree(tree: Mapping[str, Any]) -> str:
    """Draw the ``tree`` result: one line per supervisor and child."""
    lines = [f"{tree.get('path', '/')}  [{_window(tree)}]"
             + ("" if tree.get("alive", True) else "  DEAD")]
    _children(tree, "", lines)
    return "\n".join(lines)


def tree_paths(tree: Mapping[str, Any]) -> list[str]:
    """Every path in the ``tree`` result (supervisors and children, stopped ones too)."""
    out = [str(tree.get("path", "/"))]
    for child in tree.get("children") or ():
        sub = child.get("tree")
        if isinstance(sub, Mapping):
            out.extend(tree_paths(sub))
        elif child.get("path"):
            out.append(str(child["path"]))
    return out


def _inline(value: Any) -> str | None:
    """The one-line form of a scalar, an empty container or a list of scalars; else None."""
    if isinstance(value, Mapping):
        return None if value else "{}"
    if isinstance(value, list | tuple):
        if any(isinstance(v, Mapping | list | tuple) for v in value):
            return None
        return f"[{', '.join(_scalar(v) for v in value)}]"
    return _scalar(value)


def render_value(value: Any, indent: int = 0) -> str:
    """Nested maps and lists as indented ``key: value`` lines; scalars as themselves."""
    pad = "  " * indent
    inline = _inline(value)
    if inline is not None:
        return pad + inline
    lines = []
    if isinstance(value, Mapping):
        for key, item in value.items():
            text = _inline(item)
            if text is not None:
                lines.append(f"{pad}{key}: {text}")
            else:
                lines.append(f"{pad}{key}:")
                lines.append(render_value(item, indent + 1))
    else:
        for item in value:
            lines.append(f"{pad}- {render_value(item, indent + 1).lstrip()}")
    return "\n".join(lines)


def _scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"
    if isinstance(value, Mapping | list | tuple):
        return json.dumps(value, default=_json_default)
    return str(value)


def render_stats(stats: Mapping[str, Any]) -> str:
    """One actor's statistics, durations readable."""
    out = dict(stats)
    for key in ("busy_for", "idle_for", "uptime"):
        if key in out:
            out[key] = fmt_duration(out[key])
    if isinstance(out.get("last_activity"), int | float):
        out["last_activity"] = _clock(out["last_activity"])
    return render_value(out)


def render_event(event: Mapping[str, Any], tracebacks: bool = False) -> str:
    """One supervision event: time, kind, path, details (the traceback on request)."""
    detail = event.get("detail") or {}
    extra = " ".join(f"{k}={v}" for k, v in detail.items() if k != "traceback" and v != "")
    line = f"{_clock(event.get('at'))} {event.get('kind', '?'):<11} {event.get('path', '?')}"
    if extra:
        line += f" {extra}"
    tb = detail.get("traceback")
    if tracebacks and tb:
        line += "\n" + "\n".join("    " + t for t in str(tb).rstrip().splitlines())
    return line


def render_trace_entry(entry: Mapping[str, Any]) -> str:
    """One traced message: time, type, handling time, outcome, the message."""
    duration = entry.get("duration")
    took = f"{duration * 1000:.2f}ms" if isinstance(duration, int | float) else "-"
    return (f"{_clock(entry.get('at'))} {entry.get('message_type', '?'):<16} {took:>9} "
            f"{entry.get('outcome', '?'):<7} {entry.get('message', '')}")


def render_child(verb: str, path: str, result: Any) -> str:
    """The answer to restart/stop/start: the child's status and restarts."""
    if isinstance(result, Mapping) and "status" in result:
        return f"{verb} {path}: {result['status']} (restarts {result.get('restarts', 0)})"
    return f"{verb} {path}"


def render_error(kind: str, text: str) -> str:
    """``error (<kind>): <text>``."""
    return f"error ({kind}): {text}"


def _json_default(value: Any) -> Any:
    if isinstance(value, bytes):
        try:
            return value.decode()
        except UnicodeDecodeError:
            return value.hex()
    if isinstance(value, set | frozenset):
        return sorted(value, key=str)
    return str(value)


def to_json(value: Any, *, compact: bool = False) -> str:
    """One JSON document (bytes as text or hex, unknown values as their ``str``)."""
    if compact:
        return json.dumps(value, default=_json_default, separators=(",", ":"))
    return json.dumps(value, default=_json_default, indent=2)
