"""A read-only view of a running tree, for the control socket, the shell and the demo.

:func:`describe_tree` walks a supervisor and its supervisor children and returns a
msgpack-able dict: for each supervisor its strategy, intensity, period and restarts in the
current window; for each child its status, restart type, uptime, total restarts, last exit and
the live :class:`actors.ActorStats` of the running instance. It reads only published values and
actor statistics, so a stuck actor (or a supervisor busy restarting) never blocks it.
:func:`render_tree` draws that dict as an indented tree.
"""

from __future__ import annotations

import time
from typing import Any

from supervision._messages import ChildInfo
from supervision._spec import ChildKind
from supervision._supervisor import Supervisor

__all__ = ["describe_tree", "find_actor", "render_tree", "walk_actors"]


def _child(info: ChildInfo, now: float) -> dict[str, Any]:
    node = info.to_dict()
    actor = info.actor
    node["uptime"] = round(now - info.started_at, 3) if info.status == "running" else 0.0
    node["stats"] = actor.stats_dict() if actor is not None else None
    if isinstance(actor, Supervisor):
        node["tree"] = describe_tree(actor)
    return node


def describe_tree(sup: Supervisor) -> dict[str, Any]:
    """The tree under ``sup`` as a msgpack-able dict (never waits on any mailbox)."""
    now = time.monotonic()
    return {
        "path": sup.path,
        "strategy": sup.flags.strategy.value,
        "intensity": sup.flags.intensity,
        "period": sup.flags.period,
        "restarts_in_window": len(sup.restart_window()),
        "alive": not sup.actor_stopped.is_set(),
        "stats": sup.stats_dict(),
        "children": [_child(info, now) for info in sup.children()],
    }


def walk_actors(sup: Supervisor) -> list[tuple[str, Any]]:
    """Every live actor in the tree as ``(path, actor)``, the supervisor first."""
    out: list[tuple[str, Any]] = [(sup.path, sup)]
    for info in sup.children():
        if info.actor is None:
            continue
        if isinstance(info.actor, Supervisor) and info.spec.kind is ChildKind.SUPERVISOR:
            out.extend(walk_actors(info.actor))
        else:
            out.append((info.path, info.actor))
    return out


def find_actor(sup: Supervisor, path: str) -> Any | None:
    """The live actor at ``path`` in the tree, or None (the one `walk_actors` lists there;
    only the supervisors on the way to ``path`` are looked into)."""
    if path == sup.path:
        return sup
    for info in sup.children():
        actor = info.actor
        if actor is None:
            continue
        if info.path == path:
            return actor
        if (isinstance(actor, Supervisor) and info.spec.kind is ChildKind.SUPERVISOR
                and path.startswith(info.path.rstrip("/") + "/")):
            found = find_actor(actor, path)
            if found is not None:
                return found
    return None


def _fmt_uptime(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.1f}h"
    if seconds >= 60:
        return f"{seconds / 60:.1f}m"
    return f"{seconds:.1f}s"


def render_tree(tree: dict[str, Any], *, prefix: str = "") -> str:
    """Draw a :func:`describe_tree` dict as text, one line per node."""
    lines = []
    if not prefix:
        lines.append(f"{tree['path']}  [{tree['strategy']}, restarts "
                     f"{tree['restarts_in_window']}/{tree['intensity']} in "
                     f"{tree['period']:g}s]")
    children = tree["children"]
    for n, child in enumerate(children):
        last = n == len(children) - 1
        branch = "└── " if last else "├── "
        stats = child.get("stats") or {}
        extra = ""
        if stats:
            extra = f" mbox={stats['mailbox_depth']} msgs={stats['processed']}"
            if stats.get("busy_for", 0) > 1.0:
                extra += f" BUSY {stats['busy_for']:.1f}s in {stats['current_message']}"
        sub = child.get("tree")
        policy = child["restart"]
        if sub is not None:
            policy += (f", {sub['strategy']} {sub['restarts_in_window']}/"
                       f"{sub['intensity']} in {sub['period']:g}s")
        lines.append(f"{prefix}{branch}{child['id']}  {child['status']}"
                     f" up {_fmt_uptime(child['uptime'])} restarts={child['restarts']}"
                     f" ({policy}){extra}")
        if sub is not None:
            text = render_tree(sub, prefix=prefix + ("    " if last else "│   "))
            if text:
                lines.append(text)
    return "\n".join(lines)
