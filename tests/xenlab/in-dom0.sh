#!/bin/sh
# Runs inside the lab's dom0 (started by the lab's /init, or by hand from `lab.sh shell`):
# copies the checkout from the read-only share to /tmp/oxt, runs the real-Xen tests with
# pytest, writes pytest.log, junit.xml and summary.txt to the results share (/mnt/oxt-out)
# and exits 0 only when every test passed and none of the must-run tests was skipped
# (tests/xenlab/summarize.py decides).
#
# The tests: tests/xenlab/test_dom0_*.py (XcBackend walkthrough, XenstoreClient against
# oxenstored, a PV guest built by our stack, oxt-supervisor --backend xc), the xc half of tests/integration/test_hypervisor_backends.py (OXT_XC_XL_CONFIG
# set to the lab's PV guest) and the xc tests of tests/xen/.
SRC=${OXT_SRC:-/mnt/oxt-src}
OUT=${OXT_OUT:-/mnt/oxt-out}
WORK=/tmp/oxt
step() { echo "OXT-XENLAB-STEP: $* (at $(cut -d' ' -f1 /proc/uptime) s)"; }

step "copy the checkout to $WORK"
rm -rf "$WORK" && mkdir -p "$WORK"
(cd "$SRC" && tar -cf - --exclude=__pycache__ --exclude='*.egg-info' \
    setup.cfg pyproject.toml ruff.toml actors supervision xen rpc persistence tests) |
  tar -C "$WORK" -xf - || { echo "OXT-XENLAB-FAIL: copying $SRC"; exit 1; }
[ -w "$OUT" ] || OUT=/tmp/oxt-out
mkdir -p "$OUT"

export HOME=/tmp PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
export OXT_XC_XL_CONFIG=/xenlab/guest/guest.cfg
# the PVH guest needs HVM support in Xen (TCG: emulated SVM + NPT; KVM: nested virtualisation)
if xl info | grep -q '^virt_caps.* hvm'; then export OXT_XC_XL_HVM_CONFIG=/xenlab/guest/guest-pvh.cfg
else echo "OXT-XENLAB: no HVM in this Xen: the PVH guest tests will skip"; export OXT_LAB_NO_HVM=1; fi
cd "$WORK" || exit 1

step "Xen host as xl sees it"
xl info | grep -E '^(xen_version|xen_caps|virt_caps|nr_cpus|total_memory|free_memory|xen_scheduler)' |
  sed 's/^/OXT-XENLAB: xl info: /'
python3 -c 'import sys, importlib.metadata as m
import cffi, msgpack, pykka, pyxs, jeepney, pytest, hypothesis
print("OXT-XENLAB: python %s; %s" % (sys.version.split()[0], ", ".join(
    "%s %s" % (p, m.version(p)) for p in ("cffi", "msgpack", "pykka", "pyxs", "jeepney",
                                         "pytest", "hypothesis"))))' || { echo "OXT-XENLAB-FAIL: python packages"; exit 1; }

step "pytest on real Xen"
# -k 'not sim': the conformance suite's sim half runs on every host already
# XENLAB_PYTEST_ARGS (pytest-args): split on blanks, never globbed (node ids hold brackets)
set -f
# shellcheck disable=SC2086
{ python3 -m pytest -vv -s -rs --durations=12 --junitxml="$OUT/junit.xml" \
    -o junit_family=xunit1 -k 'not sim' \
    tests/xenlab/test_dom0_xc.py tests/xenlab/test_dom0_xenstore.py tests/xenlab/test_dom0_build.py \
    tests/xenlab/test_dom0_supervisor.py \
    tests/integration/test_hypervisor_backends.py \
    tests/xen/test_xc_unavailable.py tests/xen/test_xc_layout.py \
    $(cat "$OUT/pytest-args" 2>/dev/null)
  echo $? >/tmp/pytest.rc; } 2>&1 | tee "$OUT/pytest.log"
set +f

step "domains left behind"
xl list | sed 's/^/OXT-XENLAB: xl list: /'

step "summary"
python3 tests/xenlab/summarize.py "$OUT/junit.xml" "$(cat /tmp/pytest.rc)" | tee "$OUT/summary.txt"
rc=$(tail -1 "$OUT/summary.txt" | grep -q 'verdict: PASS' && echo 0 || echo 1)
sync
exit "$rc"
