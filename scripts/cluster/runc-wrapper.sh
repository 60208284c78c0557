#!/bin/bash
# The runc the cluster's containerd calls (BinaryName). On this machine root lacks CAP_SYS_RESOURCE, so no
# process may lower its oom_score_adj, and kubelet asks for negative values (pod sandboxes -998, Guaranteed
# pods -997): runc's init then fails ("failed to update /proc/self/oom_score_adj: Permission denied").
# This raises a request below our own value to our own value, in the bundle's config.json (create, run) or
# the process file (exec), then runs Debian's runc with the same arguments.
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

path = sys.argv[1]
with open("/proc/self/oom_score_adj") as own:
    floor = int(own.read())
with open(path) as f:
    spec = json.load(f)
process = spec.get("process", {}) if "ociVersion" in spec else spec
if isinstance(process.get("oomScoreAdj"), int) and process["oomScoreAdj"] < floor:
    process["oomScoreAdj"] = floor
    with open(path, "w") as f:
        json.dump(spec, f)
PY
fi
exec "$(command -v runc || echo /usr/sbin/runc)" "$@"
