#!/bin/bash
# The runc a containerd calls: the cluster's (BinaryName), the kind tests' dockerd (its default runtime,
# scripts/kind/dockerd.sh) and the containerd inside the kind node image (installed there as
# /usr/local/sbin/runc, ahead of Debian's /usr/sbin/runc on PATH). On this machine root lacks CAP_SYS_RESOURCE:
# - no process may lower its oom_score_adj, and kubelet asks for negative values (pod sandboxes -998,
#   Guaranteed pods -997): runc's init then fails ("failed to update /proc/self/oom_score_adj: Permission
#   denied"). A request below our own value is raised to our own value;
# - a privileged container (kind's nodes, kube-proxy in them) asks for every capability, and runc fails to
#   grant one outside our bounding set ("unable to apply caps: operation not permitted"). Capabilities outside
#   it are left out of the container's sets.
# Both in the bundle's config.json (create, run) or the process file (exec); then the real runc runs with the
# same arguments.
set -euo pipefail
file=""
prev=""
for arg in "$@"; do
  case $prev in
    --bundle | -b) file="$arg/config.json" ;;
    --process | -p) file="$arg" ;;
  esac
  prev=$arg
done
if [ -n "$file" ] && [ -f "$file" ]; then
  python3 - "$file" <<'PY'
import json
import sys

# Capability numbers (linux/capability.h), for the bounding set's bit mask.
NAMES = (
    "CHOWN DAC_OVERRIDE DAC_READ_SEARCH FOWNER FSETID KILL SETGID SETUID SETPCAP LINUX_IMMUTABLE "
    "NET_BIND_SERVICE NET_BROADCAST NET_ADMIN NET_RAW IPC_LOCK IPC_OWNER SYS_MODULE SYS_RAWIO SYS_CHROOT "
    "SYS_PTRACE SYS_PACCT SYS_ADMIN SYS_BOOT SYS_NICE SYS_RESOURCE SYS_TIME SYS_TTY_CONFIG MKNOD LEASE "
    "AUDIT_WRITE AUDIT_CONTROL SETFCAP MAC_OVERRIDE MAC_ADMIN SYSLOG WAKE_ALARM BLOCK_SUSPEND AUDIT_READ "
    "PERFMON BPF CHECKPOINT_RESTORE"
).split()

path = sys.argv[1]
with open("/proc/self/oom_score_adj") as own:
    floor = int(own.read())
with open("/proc/self/status") as status:
    bounding = next(int(line.split()[1], 16) for line in status if line.startswith("CapBnd:"))
missing = {f"CAP_{name}" for bit, name in enumerate(NAMES) if not bounding >> bit & 1}
with open(path) as f:
    spec = json.load(f)
process = spec.get("process", {}) if "ociVersion" in spec else spec
changed = False
if isinstance(process.get("oomScoreAdj"), int) and process["oomScoreAdj"] < floor:
    process["oomScoreAdj"] = floor
    changed = True
for kind, caps in (process.get("capabilities") or {}).items():
    if isinstance(caps, list) and missing & set(caps):
        process["capabilities"][kind] = [c for c in caps if c not in missing]
        changed = True
if changed:
    with open(path, "w") as f:
        json.dump(spec, f)
PY
fi
# The real runc: Debian's, never this script (which may be the first runc on PATH).
for runc in /usr/sbin/runc /usr/bin/runc; do
  if [ -x "$runc" ] && ! [ "$runc" -ef "$0" ]; then exec "$runc" "$@"; fi
done
echo "runc-wrapper: no runc in /usr/sbin or /usr/bin" >&2
exit 1
