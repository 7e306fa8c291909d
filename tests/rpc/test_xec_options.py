"""xec / xec-vm command lines: every option, arity, first-wins, precedence, positional forms."""

from __future__ import annotations

import pytest

from rpc.xec import (
    XEC_OPTIONS,
    XEC_VM_OPTIONS,
    Action,
    Command,
    Location,
    UsageError,
    VmSelector,
    parse_argv,
    parse_xec_argv,
    parse_xec_vm_argv,
    xec_vm_forward_argv,
)

# -- the generic parser --------------------------------------------------------------------------


def test_options_then_positionals() -> None:
    args = parse_argv(["-s", "svc", "--object", "/x", "list-vms", "-s", "other"], XEC_OPTIONS)
    assert [(o.name, o.values) for o in args.options] == [
        ("service", ("svc",)),
        ("object", ("/x",)),
    ]
    assert args.positionals == ("list-vms", "-s", "other")  # options end at the first positional


def test_values_are_taken_whatever_they_look_like() -> None:
    args = parse_argv(["-i", "-x", "-x", "p", "v"], XEC_OPTIONS)
    assert args.value("interface") == "-x"
    assert args.values("set") == ("p", "v")


def test_first_occurrence_wins() -> None:
    args = parse_argv(["-s", "a", "--service", "b", "-g", "p1", "-g", "p2"], XEC_OPTIONS)
    assert args.value("service") == "a"
    assert args.value("get") == "p1"
    assert len(args.options) == 4


def test_no_bundling_no_equals_no_double_dash() -> None:
    assert parse_argv(["-qh"], XEC_OPTIONS).positionals == ("-qh",)
    assert parse_argv(["--service=x"], XEC_OPTIONS).positionals == ("--service=x",)
    assert parse_argv(["--", "-q"], XEC_OPTIONS).positionals == ("--", "-q")
    assert parse_argv(["--s", "x"], XEC_OPTIONS).positionals == ("--s", "x")  # short with --
    assert parse_argv(["-session"], XEC_OPTIONS).positionals == ("-session",)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["-g"], "option -g (-g/--get) requires an argument"),
        (["--get"], "option --get (-g/--get) requires an argument"),
        (["-x", "prop"], "option -x (-x/--set) requires 2 arguments"),
        (["-q", "-s"], "option -s (-s/--service) requires an argument"),
        (["-i"], "requires an argument"),
        (["-o"], "requires an argument"),
        (["-t"], "requires an argument"),
    ],
)
def test_missing_option_value_is_an_error(argv: list[str], message: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_xec_argv(argv)
    assert message in str(info.value)


def test_tokens_are_recorded() -> None:
    args = parse_argv(["--set", "p", "v", "-q"], XEC_OPTIONS)
    assert [o.tokens for o in args.options] == [("--set", "p", "v"), ("-q",)]


# -- xec -----------------------------------------------------------------------------------------


def test_defaults() -> None:
    req = parse_xec_argv([])
    assert req.action == Action(Command.INTROSPECT)
    assert req.location == Location("com.citrix.xenclient.xenmgr", "/", None)
    assert (req.query, req.session, req.target_domid) == (False, False, -1)


@pytest.mark.parametrize("flag", ["-h", "--help"])
def test_help(flag: str) -> None:
    assert parse_xec_argv([flag]).action == Action(Command.HELP)


def test_every_xec_option() -> None:
    req = parse_xec_argv(
        ["-q", "--session", "-s", "svc", "-o", "/obj", "-i", "a.b", "-t", "7", "list-vms"]
    )
    assert req.query and req.session and req.target_domid == 7
    assert req.location == Location("svc", "/obj", "a.b")
    assert req.action == Action(Command.CALL, "list_vms", args=())
    long = parse_xec_argv(
        ["--query", "--service", "s", "--object", "/o", "--interface", "i.j",
         "--target-domid", "-3", "--get", "p"]
    )  # fmt: skip
    assert long.query and long.target_domid == -3
    assert long.location == Location("s", "/o", "i.j")
    assert long.action == Action(Command.GET, "p")
    assert parse_xec_argv(["--set", "p", "v"]).action == Action(Command.SET, "p", "v")
    assert parse_xec_argv(["-x", "p", "v"]).action == Action(Command.SET, "p", "v")
    assert parse_xec_argv(["--list-interfaces"]).action == Action(Command.LIST_INTERFACES)
    assert parse_xec_argv(["--list-methods"]).action == Action(Command.LIST_METHODS)
    assert parse_xec_argv(["--list-properties"]).action == Action(Command.LIST_PROPERTIES)


def test_empty_values_are_kept() -> None:
    req = parse_xec_argv(["-s", "", "-o", ""])
    assert req.location == Location("", "", None)


@pytest.mark.parametrize(
    ("argv", "action"),
    [
        (["-x", "p", "v", "-g", "q", "--list-properties", "--list-methods", "--list-interfaces",
          "-h"], Action(Command.HELP)),
        (["-x", "p", "v", "-g", "q", "--list-properties", "--list-methods", "--list-interfaces"],
         Action(Command.LIST_INTERFACES)),
        (["-x", "p", "v", "-g", "q", "--list-properties", "--list-methods"],
         Action(Command.LIST_METHODS)),
        (["-x", "p", "v", "-g", "q", "--list-properties"], Action(Command.LIST_PROPERTIES)),
        (["-x", "p", "v", "-g", "q", "getall"], Action(Command.GET, "q")),
        (["-x", "p", "v", "getall"], Action(Command.SET, "p", "v")),
        (["-q", "getall"], Action(Command.GET_ALL)),
    ],
)  # fmt: skip
def test_command_precedence(argv: list[str], action: Action) -> None:
    assert parse_xec_argv(argv).action == action


@pytest.mark.parametrize(
    ("positionals", "action"),
    [
        ([], Action(Command.INTROSPECT)),
        (["getall"], Action(Command.GET_ALL)),
        (["getall", "extra"], Action(Command.GET_ALL)),
        (["get", "acpi-state"], Action(Command.GET, "acpi-state")),
        (["get", "p", "extra"], Action(Command.GET, "p")),
        (["set", "name", "my vm"], Action(Command.SET, "name", "my vm")),
        (["set", "p", "v", "extra"], Action(Command.SET, "p", "v")),
        (["get"], Action(Command.CALL, "get", args=())),
        (["set"], Action(Command.CALL, "set", args=())),
        (["set", "p"], Action(Command.CALL, "set", args=("p",))),
        (["list-vms"], Action(Command.CALL, "list_vms", args=())),
        (["create_vhd", "10"], Action(Command.CALL, "create_vhd", args=("10",))),
        (["find-vm-by-domid", "-1"], Action(Command.CALL, "find_vm_by_domid", args=("-1",))),
        (["--unknown"], Action(Command.CALL, "__unknown", args=())),
        (["GetAll"], Action(Command.CALL, "GetAll", args=())),
    ],
)
def test_positional_forms(positionals: list[str], action: Action) -> None:
    assert parse_xec_argv(positionals).action == action


def test_property_names_are_not_mangled_but_args_are_untouched() -> None:
    assert parse_xec_argv(["-g", "acpi-state"]).action == Action(Command.GET, "acpi-state")
    call = parse_xec_argv(["set-db-key", "a-b", "c-d"]).action
    assert call == Action(Command.CALL, "set_db_key", args=("a-b", "c-d"))


@pytest.mark.parametrize("text", ["5x", "", " 5", "0x10", "five", "1.0", "--1"])
def test_target_domid_must_be_an_integer(text: str) -> None:
    with pytest.raises(UsageError, match="invalid target domid"):
        parse_xec_argv(["-t", text])


def test_target_domid_values() -> None:
    assert parse_xec_argv(["-t", "0"]).target_domid == 0
    assert parse_xec_argv(["-t", "-1"]).target_domid == -1
    assert parse_xec_argv(["-t", "12", "-t", "x"]).target_domid == 12  # first wins


# -- xec-vm --------------------------------------------------------------------------------------


def test_xec_vm_has_no_target_domid() -> None:
    assert parse_argv(["-t", "1"], XEC_VM_OPTIONS).positionals == ("-t", "1")
    assert parse_argv(["-t", "1"], XEC_OPTIONS).positionals == ()


def test_xec_vm_no_selector_means_table() -> None:
    req = parse_xec_vm_argv(["-q"])
    assert req.selector is None and not req.help
    assert parse_xec_vm_argv(["--help"]).help


@pytest.mark.parametrize(
    ("argv", "selector"),
    [
        (["-d", "3", "-u", "U", "-n", "N", "-o", "/vm/x"], VmSelector("object", "/vm/x")),
        (["-d", "3", "-u", "U", "-n", "N"], VmSelector("name", "N")),
        (["-d", "3", "-u", "U"], VmSelector("uuid", "U")),
        (["-d", "3"], VmSelector("domid", "3")),
        (["--domid", "3", "--uuid", "U", "--name", "N"], VmSelector("name", "N")),
        (["--object", "/a"], VmSelector("object", "/a")),
        (["--path", "/b"], VmSelector("object", "/b")),
        (["-n", "first", "-n", "second"], VmSelector("name", "first")),
    ],
)
def test_xec_vm_selector_precedence(argv: list[str], selector: VmSelector) -> None:
    assert parse_xec_vm_argv(argv).selector == selector


def test_xec_vm_missing_values() -> None:
    for flag in ("-n", "-u", "-d", "-o", "--path", "-k", "-c", "-s", "-i", "-g"):
        with pytest.raises(UsageError, match="requires an argument"):
            parse_xec_vm_argv([flag])
    with pytest.raises(UsageError, match="requires 2 arguments"):
        parse_xec_vm_argv(["-x", "p"])


VM = "/vm/00000000_0000_0000_0000_000000000001"


@pytest.mark.parametrize(
    ("argv", "forward"),
    [
        (["-n", "ndvm"], ["-o", VM]),
        (["-n", "ndvm", "get", "name"], ["-o", VM, "get", "name"]),
        (["-q", "-u", "U", "--session", "-i", "a.b", "start"],
         ["-o", VM, "-q", "--session", "-i", "a.b", "start"]),
        (["--list-disks", "-n", "x", "-k", "1"], ["-o", VM, "list-disks"]),
        (["--list-nics", "-n", "x", "-s", "svc"], ["-o", VM, "list-nics"]),
        (["--list-nics", "--list-disks", "-n", "x"], ["-o", VM, "list-disks"]),
        (["-n", "x", "-k", "2", "-g", "mode"], ["-o", f"{VM}/disk/2", "-g", "mode"]),
        (["-n", "x", "-c", "0", "-c", "1", "delete"], ["-o", f"{VM}/nic/0", "delete"]),
        (["-k", "3", "-c", "0", "-n", "x"], ["-o", f"{VM}/disk/3"]),
        (["-o", "/vm/y", "--path", "/vm/z", "-x", "name", "-n", "getall"],
         ["-o", VM, "-x", "name", "-n", "getall"]),
        # selector-looking positionals are passed on untouched (the original removed them)
        (["-n", "x", "set", "description", "-d"], ["-o", VM, "set", "description", "-d"]),
        (["-n", "x", "set", "name", "-n", "y"], ["-o", VM, "set", "name", "-n", "y"]),
        (["-n", "x", "--list-interfaces", "--list-methods", "--list-properties"],
         ["-o", VM, "--list-interfaces", "--list-methods", "--list-properties"]),
    ],
)  # fmt: skip
def test_xec_vm_forward_argv(argv: list[str], forward: list[str]) -> None:
    req = parse_xec_vm_argv(argv)
    assert req.selector is not None
    assert xec_vm_forward_argv(req, VM) == forward
    # the forwarded command line is one xec accepts, aimed at the right object
    xec = parse_xec_argv(forward)
    assert xec.location.object == forward[1]


def test_actions_of_different_commands_differ() -> None:
    kinds = {Action(c) for c in Command}
    assert len(kinds) == len(Command)
    assert Action(Command.CALL, "m", args=("1",)) != Action(Command.CALL, "m")
