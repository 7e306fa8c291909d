#!/usr/bin/env bash
# A scripted walk through the embedded default. Start it first, in another terminal:
#     make run
# then run this from the checkout: examples/walkthrough.sh
# It shows the tree, uses dbd through xec, starts a VM through its monitor, crashes the
# monitor from the shell and shows the new monitor adopting the same running domain.
# OXT_STATE_DIR (default ./state) says where the embedded default keeps its state; BIN where
# the commands are (default: the checkout's .venv/bin).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
BIN=${BIN:-$here/.venv/bin}
VM=${VM:-00000000-0000-4000-8000-00000000a001}
export OXT_STATE_DIR=${OXT_STATE_DIR:-$PWD/state}

step() { printf '\n== %s\n' "$*"; }

step "1. The supervision tree (oxt-shell -c tree)"
"$BIN/oxt-shell" -c tree

step "2. dbd over the private bus, with xec"
"$BIN/xec" -s com.citrix.xenclient.db write /walkthrough/greeting "hello from xec"
"$BIN/xec" -s com.citrix.xenclient.db read /walkthrough/greeting

step "3. Start VM $VM through its monitor (xenvm-cmd)"
if [ "$("$BIN/xenvm-cmd" "$VM" get-status)" != running ]; then
    "$BIN/xenvm-cmd" "$VM" start
fi
echo "status: $("$BIN/xenvm-cmd" "$VM" get-status)"
before=$("$BIN/xenvm-cmd" "$VM" get-domid)
echo "domain: $before"

step "4. Crash its monitor from the shell"
"$BIN/oxt-shell" -c "crash /vms/$VM"
for _ in $(seq 50); do  # the supervisor restarts it within milliseconds (backoff 50 ms)
    "$BIN/xenvm-cmd" "$VM" get-status >/dev/null 2>&1 && break
    sleep 0.1
done
"$BIN/oxt-shell" -c "log -n 6 /vms/$VM"

step "5. The new monitor adopted the running domain"
after=$("$BIN/xenvm-cmd" "$VM" get-domid)
echo "domain before the crash: $before, after: $after, status: $("$BIN/xenvm-cmd" "$VM" get-status)"
if [ "$before" = "$after" ]; then
    echo "adopted: the same domain kept running"
else
    echo "NOT adopted" >&2
    exit 1
fi
