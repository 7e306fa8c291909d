"""rpc-proxy in the dom0 application: ``[[proxy]]`` entries and the ``rpc-proxy`` command line."""

from __future__ import annotations

from pathlib import Path

import pytest

from rpc.proxy import Channel, parse_options
from supervision import ChildKind
from supervision.dom0._config import Dom0ConfigError, load_config
from supervision.dom0._proxies import forwarding_to, main, proxy_specs


def test_proxy_entries_are_checked_at_load(tmp_path: Path) -> None:
    good = tmp_path / "good.toml"
    good.write_text('[[proxy]]\nargs = "-s -i argo:5556 -n com.x.uuid_$UUID"\n')
    cfg = load_config(good)
    assert [p.argv for p in cfg.proxies] == [("-s", "-i", "argo:5556", "-n", "com.x.uuid_$UUID")]
    bad = tmp_path / "bad.toml"
    bad.write_text('[[proxy]]\nargs = "-i carrier-pigeon:1"\n')
    with pytest.raises(Dom0ConfigError, match="carrier-pigeon"):
        load_config(bad)


def test_relative_rules_paths_are_beside_the_config_file(tmp_path: Path) -> None:
    cfg_file = tmp_path / "conf" / "dom0.toml"
    cfg_file.parent.mkdir()
    cfg_file.write_text('[[proxy]]\nargs = "-i argo:1 -r guest.rules"\n'
                        '[[proxy]]\nargs = "-i argo:2 --rules=sub/x.rules -v"\n'
                        '[[proxy]]\nargs = "-i argo:3 -r/etc/abs.rules"\n'
                        '[[proxy]]\nargs = "-i argo:4 -n rules"\n')
    argvs = [p.argv for p in load_config(cfg_file).proxies]
    base = str(cfg_file.parent)
    assert argvs == [("-i", "argo:1", "-r", f"{base}/guest.rules"),
                     ("-i", "argo:2", f"--rules={base}/sub/x.rules", "-v"),
                     ("-i", "argo:3", "-r/etc/abs.rules"),
                     ("-i", "argo:4", "-n", "rules")]
    assert parse_options(argvs[0]).rules == f"{base}/guest.rules"


def test_the_embedded_default_runs_a_guest_proxy_with_the_example_rules() -> None:
    example = Path(__file__).resolve().parents[2] / "examples" / "oxt-supervisor.toml"
    [entry] = [p for p in load_config(example).proxies if "argo:5556" in p.argv]
    rules = Path(parse_options(entry.argv).rules)
    assert rules == example.parent / "rpc-proxy.rules" and rules.is_file()


def test_proxy_specs_make_one_instance_per_entry() -> None:
    spec = proxy_specs([["-s"], ["-i", "tcp:8080"], ["-i", "tcp:8081", "--json-in"],
                        ["-i", "tcp:8082", "--json-out"]],
                       "unix:path=/run/bus", xenstore=None)
    assert spec.id == "proxies" and spec.kind is ChildKind.SUPERVISOR
    _flags, children = spec.start.args  # type: ignore[attr-defined]
    assert [c.id for c in children] == ["proxy0", "proxy1", "proxy2", "proxy3"]
    _flags0, grandchildren = children[0].start.args
    assert [c.id for c in grandchildren] == ["policy", "service", "clients", "listener"]


def test_entries_without_o_forward_to_the_trees_bus() -> None:
    opts = forwarding_to(parse_options([]), "unix:path=/state/dbus/system_bus_socket")
    assert opts.outgoing == Channel("unix", path="/state/dbus/system_bus_socket")
    kept = forwarding_to(parse_options(["-o", "unix:/other"]), "unix:path=/x")
    assert kept.outgoing == Channel("unix", path="/other")


def test_help_and_bad_options(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-h"]) == 0
    assert "--incoming-channel" in capsys.readouterr().out
    assert main(["--bogus"]) == 2
    assert "--bogus" in capsys.readouterr().err


def test_check_rules(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "good.rules"
    good.write_text("deny all\nallow destination com.citrix.xenclient.db member read\n")
    assert main(["--check-rules", str(good)]) == 0
    out = capsys.readouterr().out
    assert "deny" in out and "com.citrix.xenclient.db" in out
    bad = tmp_path / "bad.rules"
    bad.write_text("deny all\nallow destination = x\n")
    assert main(["--check-rules", str(bad)]) == 1
    err = capsys.readouterr().err
    assert f"{bad}:2:" in err
    assert main(["--check-rules", str(tmp_path / "missing")]) == 1
