"""The shell's command language (pure: no I/O): words, the command table, parsing, completion.

A line holds commands separated by unquoted ``;``. Words are split on blanks; single quotes
keep everything, double quotes keep everything but ``\\"`` and ``\\\\``, a backslash outside
quotes escapes the next character, and a ``#`` starting a word begins a comment. Each command
is checked against :data:`COMMANDS` (its options, positional arguments and their kinds) and
becomes a :class:`Command` with every option filled in; anything wrong raises
:class:`UsageError` naming the command, the word and what was expected, so the shell never
shows a traceback for a bad line. Lines are bounded (:data:`MAX_LINE`).

:func:`complete` gives the completion candidates for the word under the cursor (commands,
options, actor paths, built-in messages, VM uuids, VM tasks and their ``key=``) from the data
the shell fetched; a candidate that is a whole word ends with a space.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "BY_NAME",
    "COMMANDS",
    "MAX_LINE",
    "MESSAGES",
    "Command",
    "CommandSpec",
    "CompletionSources",
    "Opt",
    "Param",
    "UsageError",
    "complete",
    "help_text",
    "parse_line",
    "parse_task_table",
    "parse_words",
    "split_commands",
]

__pure__ = True  # a pure core: no I/O, no threads (tests/test_architecture.py)

MAX_LINE = 64 * 1024
"""Longest line accepted: far above anything typed; a runaway paste is refused, not parsed."""

MESSAGES = ("ping", "get-stats", "get-snapshot", "crash")
"""The built-in messages the control socket knows by name (``send``/``ask``)."""

ParamKind = Literal["path", "message", "text", "command", "prefix", "vmword"]
OptKind = Literal["int", "float", "flag"]


class UsageError(ValueError):
    """A line that is not a valid command; the message says what is wrong."""


@dataclass(frozen=True, slots=True)
class Opt:
    """An option: its spellings, where its value goes, its type, default and lower bound."""

    flags: tuple[str, ...]
    dest: str
    kind: OptKind
    default: Any
    help: str
    minimum: float = 0.0
    metavar: str = ""


@dataclass(frozen=True, slots=True)
class Param:
    """A positional argument (``rest``: takes every remaining word)."""

    name: str
    dest: str
    kind: ParamKind
    required: bool = True
    rest: bool = False


@dataclass(frozen=True, slots=True)
class CommandSpec:
    """One command of the shell."""

    name: str
    summary: str
    params: tuple[Param, ...] = ()
    opts: tuple[Opt, ...] = ()
    aliases: tuple[str, ...] = ()
    details: str = ""
    synopsis: str = ""

    @property
    def usage(self) -> str:
        """``name [options] ARGS``, as shown by ``help``."""
        if self.synopsis:
            return self.synopsis
        words = [self.name]
        for opt in self.opts:
            value = "" if opt.kind == "flag" else f" {opt.metavar or opt.dest.upper()}"
            words.append(f"[{opt.flags[0]}{value}]")
        for param in self.params:
            name = f"{param.name} ..." if param.rest else param.name
            words.append(name if param.required else f"[{name}]")
        return " ".join(words)

    def option(self, flag: str) -> Opt | None:
        """The option spelled ``flag``, or None."""
        return next((o for o in self.opts if flag in o.flags), None)


@dataclass(frozen=True, slots=True)
class Command:
    """A parsed command: its name (``vm`` becomes ``vm.add`` or ``vm.task``) and arguments."""

    name: str
    args: Mapping[str, Any] = field(default_factory=dict)


def _n(default: int | None, what: str, minimum: int = 1) -> Opt:
    return Opt(("-n",), "n", "int", default, what, minimum, "N")


_PATH = Param("PATH", "path", "path")
_TIMEOUT = Opt(("-t", "--timeout"), "timeout", "float", None,
               "how long the actor may take to answer (server default 2 s, at most 60 s)",
               0.001, "SECS")

COMMANDS: tuple[CommandSpec, ...] = (
    CommandSpec("tree", "the supervision tree: status, restarts vs intensity, mailboxes"),
    CommandSpec("actors", "every live actor: class, mailbox, messages handled, busy or idle",
                aliases=("ps",)),
    CommandSpec("top", "refreshing top-N by mailbox depth and by mailbox growth, with "
                "throughput and restarts (q or Ctrl-C to stop)",
                opts=(_n(10, "rows per table"),
                      Opt(("-d", "--delay"), "delay", "float", 1.0, "seconds between frames",
                          0.05, "SECS"),
                      Opt(("--count",), "count", "int", None, "stop after K frames", 1, "K"))),
    CommandSpec("state", "an actor's state snapshot (asked through its mailbox, bounded)",
                (_PATH,), (_TIMEOUT,)),
    CommandSpec("stats", "an actor's statistics (read without its mailbox)", (_PATH,)),
    CommandSpec("log", "the supervision event log; -f follows it until Ctrl-C",
                (Param("PREFIX", "prefix", "prefix", required=False),),
                (_n(20, "events shown from the log", 0),
                 Opt(("-f", "--follow"), "follow", "flag", False, "follow new events"),
                 Opt(("--tb",), "tracebacks", "flag", False, "show crash tracebacks"))),
    CommandSpec("trace", "the messages an actor handles; stops after N messages or T seconds",
                (_PATH,), (_n(20, "messages at most"),
                           Opt(("-t", "--time"), "seconds", "float", 10.0, "seconds at most",
                               0.001, "SECS"))),
    CommandSpec("send", "tell an actor a built-in message (" + ", ".join(MESSAGES) + ")",
                (_PATH, Param("MSG", "message", "message"))),
    CommandSpec("ask", "ask an actor a built-in message and show the answer",
                (_PATH, Param("MSG", "message", "message")), (_TIMEOUT,)),
    CommandSpec("crash", "inject a crash into an actor (it raises; its supervisor reacts)",
                (_PATH, Param("REASON", "reason", "text", required=False, rest=True))),
    CommandSpec("restart", "stop and start a child (a stopped one is started)", (_PATH,)),
    CommandSpec("stop", "terminate a child (a dynamic child is removed)", (_PATH,)),
    CommandSpec("start", "start a stopped child", (_PATH,)),
    CommandSpec("vm", "add a VM monitor, or run a VM task (start, shutdown, get-status, ...)",
                (Param("ARGS", "words", "vmword", rest=True),), (_TIMEOUT,),
                synopsis="vm add UUID CONFIGFILE | vm UUID TASK [key=value ...] [-t SECS]",
                details="vm add reads CONFIGFILE here and sends its text; vm UUID help lists "
                        "the tasks. -t bounds the task (server default 120 s)."),
    CommandSpec("help", "the commands, or one command's usage",
                (Param("COMMAND", "command", "command", required=False),)),
    CommandSpec("quit", "leave the shell (also Ctrl-D)", aliases=("exit",)),
)

BY_NAME: Mapping[str, CommandSpec] = {
    name: spec for spec in COMMANDS for name in (spec.name, *spec.aliases)}


# ------------------------------------------------------------------ words

def _flush(commands: list[list[str]], word: list[str], in_word: bool) -> None:
    if in_word:
        commands[-1].append("".join(word))
    word.clear()


def split_commands(line: str, *, lenient: bool = False) -> list[list[str]]:
    """Split ``line`` into commands (lists of words) at unquoted ``;``.

    ``lenient`` (for completion) accepts an unterminated quote or a trailing backslash.
    Raises :class:`UsageError` otherwise, or for a line over :data:`MAX_LINE` characters.
    """
    if len(line) > MAX_LINE:
        raise UsageError(f"line of {len(line)} characters is over the {MAX_LINE} limit")
    commands: list[list[str]] = [[]]
    word: list[str] = []
    in_word = False
    quote = ""
    i = 0
    while i < len(line):
        c = line[i]
        if quote:
            if c == quote:
                quote = ""
            elif c == "\\" and quote == '"' and line[i + 1:i + 2] in ('"', "\\"):
                word.append(line[i + 1])
                i += 1
            else:
                word.append(c)
        elif c in "'\"":
            quote, in_word = c, True
        elif c == "\\":
            if i + 1 < len(line):
                word.append(line[i + 1])
                in_word = True
                i += 1
            elif not lenient:
                raise UsageError("the line ends with a backslash")
        elif c in " \t\r\n":
            _flush(commands, word, in_word)
            in_word = False
        elif c == ";":
            _flush(commands, word, in_word)
            in_word = False
            commands.append([])
        elif c == "#" and not in_word:
            break
        else:
            word.append(c)
            in_word = True
        i += 1
    if quote and not lenient:
        raise UsageError(f"unterminated {quote} quote")
    _flush(commands, word, in_word)
    return commands


# ------------------------------------------------------------------ parsing

def _is_number(word: str) -> bool:
    try:
        float(word)
    except ValueError:
        return False
    return True


def _value(spec: CommandSpec, opt: Opt, flag: str, text: str) -> int | float:
    try:
        value: int | float = int(text) if opt.kind == "int" else float(text)
    except ValueError:
        kind = "an integer" if opt.kind == "int" else "a number"
        raise UsageError(f"{spec.name}: {flag} takes {kind}, not {text!r}") from None
    if value != value or value in (float("inf"), float("-inf")) or value < opt.minimum:
        raise UsageError(f"{spec.name}: {flag} must be at least {opt.minimum:g}, not {text}")
    return value


def _options(spec: CommandSpec, words: Sequence[str]) -> tuple[dict[str, Any], list[str]]:
    values: dict[str, Any] = {o.dest: o.default for o in spec.opts}
    positionals: list[str] = []
    only_positional = False
    i = 0
    while i < len(words):
        word = words[i]
        if only_positional or not word.startswith("-") or word == "-" or _is_number(word):
            positionals.append(word)
        elif word == "--":
            only_positional = True
        else:
            flag, eq, inline = word.partition("=")
            opt = spec.option(flag)
            if opt is None:
                raise UsageError(f"{spec.name}: unknown option {flag} (usage: {spec.usage})")
            if opt.kind == "flag":
                if eq:
                    raise UsageError(f"{spec.name}: {flag} takes no value")
                values[opt.dest] = True
            else:
                if not eq:
                    i += 1
                    if i >= len(words):
                        raise UsageError(f"{spec.name}: {flag} needs a value")
                    inline = words[i]
                values[opt.dest] = _value(spec, opt, flag, inline)
        i += 1
    return values, positionals


def _vm(values: dict[str, Any]) -> Command:
    words: list[str] = list(values.pop("words"))
    if words[0] == "add":
        if len(words) != 3:
            raise UsageError("vm add takes UUID CONFIGFILE")
        return Command("vm.add", {"uuid": words[1], "file": words[2]})
    if len(words) < 2:
        raise UsageError(f"vm {words[0]}: which task? (vm UUID TASK [key=value ...]; "
                         f"vm UUID help lists them)")
    params: dict[str, str] = {}
    for item in words[2:]:
        key, eq, val = item.partition("=")
        if not eq or not key:
            raise UsageError(f"vm: task arguments are key=value, not {item!r}")
        params[key] = val
    return Command("vm.task", {"uuid": words[0], "task": words[1], "params": params,
                               "timeout": values["timeout"]})


def parse_words(words: Sequence[str]) -> Command:
    """Check one command's words against its spec; raises :class:`UsageError`."""
    if not words:
        raise UsageError("empty command")
    spec = BY_NAME.get(words[0])
    if spec is None:
        raise UsageError(f"unknown command {words[0]!r} (help lists the commands)")
    values, positionals = _options(spec, words[1:])
    j = 0
    for param in spec.params:
        if param.rest:
            taken = positionals[j:]
            j = len(positionals)
            if param.required and not taken:
                raise UsageError(f"{spec.name}: missing {param.name} (usage: {spec.usage})")
            values[param.dest] = " ".join(taken) if param.kind == "text" else tuple(taken)
            continue
        if j < len(positionals):
            value = positionals[j]
            j += 1
            if param.kind == "path" and not value.startswith("/"):
                raise UsageError(f"{spec.name}: {param.name} is an actor path starting with "
                                 f"/, not {value!r}")
            values[param.dest] = value
        elif param.required:
            raise UsageError(f"{spec.name}: missing {param.name} (usage: {spec.usage})")
        else:
            values[param.dest] = None
    if j < len(positionals):
        raise UsageError(f"{spec.name}: unexpected argument {positionals[j]!r} "
                         f"(usage: {spec.usage})")
    if spec.name == "vm":
        return _vm(values)
    if spec.name == "crash" and not values.get("reason"):
        values["reason"] = None
    return Command(spec.name, values)


def parse_line(line: str) -> list[Command]:
    """Every command of ``line`` (none for a blank line or a comment)."""
    return [parse_words(words) for words in split_commands(line) if words]


def help_text(name: str | None = None) -> str:
    """The command list, or one command's usage, options and description."""
    if name is None:
        width = max(len(s.usage) for s in COMMANDS if len(s.usage) < 40)
        lines = [f"  {s.usage:<{width}}  {s.summary}" if len(s.usage) <= width
                 else f"  {s.usage}\n  {'':<{width}}  {s.summary}" for s in COMMANDS]
        return ("commands (separate several with ;):\n" + "\n".join(lines)
                + "\nhelp COMMAND shows one command's options.")
    spec = BY_NAME.get(name)
    if spec is None:
        raise UsageError(f"help: unknown command {name!r}")
    out = [f"usage: {spec.usage}", f"  {spec.summary}"]
    if spec.aliases:
        out.append(f"  also: {', '.join(spec.aliases)}")
    if spec.details:
        out.append(f"  {spec.details}")
    for opt in spec.opts:
        value = "" if opt.kind == "flag" else f" {opt.metavar or opt.dest.upper()}"
        default = "" if opt.default in (None, False) else f" (default {opt.default})"
        out.append(f"  {', '.join(opt.flags)}{value}: {opt.help}{default}")
    return "\n".join(out)


# ------------------------------------------------------------------ completion

@dataclass(frozen=True, slots=True)
class CompletionSources:
    """What completion draws from: the tree's paths, VM uuids, VM tasks and their arguments,
    and a file-name completer (for ``vm add``)."""

    paths: Sequence[str] = ()
    vms: Sequence[str] = ()
    tasks: Mapping[str, Sequence[str]] = field(default_factory=dict)
    files: Callable[[str], list[str]] | None = None


def _positionals(spec: CommandSpec, words: Sequence[str]) -> list[str]:
    out: list[str] = []
    skip = False
    for word in words:
        if skip:
            skip = False
        elif word.startswith("-") and not _is_number(word) and word != "-":
            opt = spec.option(word.partition("=")[0])
            skip = opt is not None and opt.kind != "flag" and "=" not in word
        else:
            out.append(word)
    return out


def _vm_candidates(done: Sequence[str], sources: CompletionSources) -> list[str]:
    if not done:
        return ["add ", *(f"{vm} " for vm in sources.vms)]
    if done[0] == "add":
        return []  # a new uuid; the file is completed by the caller's file completer
    if len(done) == 1:
        return [f"{task} " for task in sources.tasks]
    given = {w.partition("=")[0] for w in done[2:]}
    return [f"{a}=" for a in sources.tasks.get(done[1], ()) if a not in given]


def complete(before: str, text: str, sources: CompletionSources) -> list[str]:
    """Candidates for the word ``text`` when the line up to it is ``before``, sorted.

    A whole-word candidate ends with a space; ``key=`` and directories do not.
    """
    try:
        words = split_commands(before, lenient=True)[-1]
    except UsageError:
        return []
    if not words:
        return sorted(f"{name} " for name in BY_NAME if name.startswith(text))
    spec = BY_NAME.get(words[0])
    if spec is None:
        return []
    if text.startswith("-"):
        return sorted(f"{flag} " for opt in spec.opts for flag in opt.flags
                      if flag.startswith(text))
    done = _positionals(spec, words[1:])
    if spec.name == "vm":
        if done[:1] == ["add"] and len(done) == 2 and sources.files is not None:
            return sorted(sources.files(text))
        candidates = _vm_candidates(done, sources)
    else:
        params = spec.params
        param = (params[len(done)] if len(done) < len(params)
                 else params[-1] if params and params[-1].rest else None)
        kind = param.kind if param is not None else None
        if kind in ("path", "prefix"):
            candidates = [f"{p} " for p in sources.paths]
        elif kind == "message":
            candidates = [f"{m} " for m in MESSAGES]
        elif kind == "command":
            candidates = [f"{s.name} " for s in COMMANDS]
        else:
            candidates = []
    return sorted(c for c in set(candidates) if c.startswith(text))


def parse_task_table(text: str) -> dict[str, tuple[str, ...]]:
    """The VM tasks and their argument names from the ``help`` task's table.

    Each line is ``name kind description [arg=type arg=type? ...]``; other lines are skipped.
    """
    out: dict[str, tuple[str, ...]] = {}
    for line in text.splitlines():
        words = line.split()
        if len(words) < 2 or not words[0][:1].isalpha():
            continue
        args: tuple[str, ...] = ()
        if line.rstrip().endswith("]") and "[" in line:
            inside = line[line.rindex("[") + 1:line.rstrip().rindex("]")]
            args = tuple(w.partition("=")[0] for w in inside.split() if "=" in w)
        out[words[0]] = args
    return out
