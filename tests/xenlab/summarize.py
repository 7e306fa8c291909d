"""Verdict of a lab run (runs in the lab's dom0, called by tests/xenlab/in-dom0.sh).

``python3 summarize.py JUNIT_XML PYTEST_EXIT_CODE`` prints, per test module, how many tests
passed, failed, errored and were skipped, every failure and skip with its reason, and last a
line ``OXT-XENLAB-SUMMARY verdict: PASS`` or ``... FAIL (<why>)``. PASS needs pytest's exit code
0, no failure or error (an xfail, a known gap with its reason, is listed but allowed), and
every test of the must-run modules (MUST_RUN) run and passed: a
skip there means the lab did not prove what it is for (e.g. OXT_XC_XL_CONFIG unset, no
privcmd), so it fails the run, except a skip whose reason says ``[lab-optional]``, or names
HVM when the environment has ``OXT_LAB_NO_HVM=1`` (in-dom0.sh sets it when Xen offers no HVM:
then the PVH/HVM guest tests cannot run). Always exits 0; the verdict line carries the result.
"""

from __future__ import annotations

import os
import sys
import xml.etree.ElementTree as ET
from collections import Counter, defaultdict

MUST_RUN = (
    "tests.xenlab.test_dom0_xc",
    "tests.xenlab.test_dom0_xenstore",
    "tests.xenlab.test_dom0_build",
    "tests.xenlab.test_dom0_supervisor",
    "tests.xenlab.test_dom0_xenmgr",
    "tests.integration.test_hypervisor_backends",
)


def allowed(skip_note: str) -> bool:
    """Whether a skip in a must-run module is acceptable (see the module docstring)."""
    return "[lab-optional]" in skip_note or (
        os.environ.get("OXT_LAB_NO_HVM") == "1" and "HVM" in skip_note)


def main(argv: list[str]) -> int:
    path, rc = argv[1], argv[2]
    why: list[str] = []
    if rc != "0":
        why.append(f"pytest exit code {rc}")
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as exc:
        print(f"OXT-XENLAB-SUMMARY: cannot read {path}: {exc}")
        print("OXT-XENLAB-SUMMARY verdict: FAIL (no junit report)")
        return 0
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    notes: list[str] = []
    for case in root.iter("testcase"):
        module = case.get("classname", "?")
        name = f"{module}::{case.get('name')}"
        outcome = "passed"
        for tag in ("failure", "error", "skipped"):
            found = case.find(tag)
            if found is not None:
                outcome = {"failure": "failed", "error": "errors"}.get(tag, tag)
                if tag == "skipped" and found.get("type") == "pytest.xfail":
                    outcome = "xfailed"  # a known gap, named by its reason
                message = (found.get("message") or found.text or "").strip().splitlines()
                notes.append(f"{outcome.upper()} {name}: {message[0] if message else ''}")
                break
        counts[module][outcome] += 1
        if outcome == "skipped" and module.startswith(MUST_RUN) and not allowed(notes[-1]):
            why.append(f"must-run test skipped: {name}")
        if outcome in ("failed", "errors"):
            why.append(f"{outcome}: {name}")
    for module in sorted(counts):
        c = counts[module]
        print(f"OXT-XENLAB-SUMMARY: {module}: {c['passed']} passed, {c['failed']} failed, "
              f"{c['errors']} errors, {c['skipped']} skipped, {c['xfailed']} known gaps (xfail)")
    for module in MUST_RUN:
        if not counts[module]["passed"]:
            why.append(f"nothing passed in {module}")
    for note in notes:
        print(f"OXT-XENLAB-SUMMARY: {note}")
    total = sum((c for c in counts.values()), Counter())
    print(f"OXT-XENLAB-SUMMARY: total {total['passed']} passed, {total['failed']} failed, "
          f"{total['errors']} errors, {total['skipped']} skipped, "
          f"{total['xfailed']} known gaps (xfail)")
    verdict = "PASS" if not why else f"FAIL ({'; '.join(dict.fromkeys(why))})"
    print(f"OXT-XENLAB-SUMMARY verdict: {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
