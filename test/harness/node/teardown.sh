#!/usr/bin/env bash
# Tears down a one-node test cluster started by test/harness/node/index.ts, from what its state directory
# recorded at start (teardown.env): kills every process in the run's cgroup tree (daemons, shims,
# Pods) by freezing it first so nothing forks away, removes kube-proxy's and our iptables rules,
# unmounts everything under the state directory and the Pod network namespaces of this run, deletes
# the bridge, restores the VM-wide sysctls kubelet and kube-proxy write, removes the cgroups, the
# hard-coded host paths the run created, and the state directory.
# Idempotent, and run both by stop() and by the watchdog when the test process dies.
set -uo pipefail
state=$1
env="$state/teardown.env"
[ -f "$env" ] || { rm -rf "$state"; exit 0; }
# shellcheck disable=SC1090
. "$env"

hierarchies() { for d in /sys/fs/cgroup/*/; do [ -d "$d$CGROUP" ] && echo "$d$CGROUP"; done; }

# 1. Processes: freeze the tree, SIGKILL every task, thaw so the kills land, wait until empty.
freezer="/sys/fs/cgroup/freezer/$CGROUP"
for round in 1 2 3 4 5 6 7 8 9 10; do
  [ -d "$freezer" ] && find "$freezer" -depth -name freezer.state -exec sh -c 'echo FROZEN > "$1"' _ {} \; 2>/dev/null
  pids=$(for h in $(hierarchies); do find "$h" -name cgroup.procs -exec cat {} + 2>/dev/null; done | sort -u)
  [ -n "$pids" ] && kill -9 $pids 2>/dev/null
  [ -d "$freezer" ] && find "$freezer" -name freezer.state -exec sh -c 'echo THAWED > "$1"' _ {} \; 2>/dev/null
  [ -z "$pids" ] && break
  sleep 0.2
done
# Processes started before they could join the cgroup (or the parent's own children).
[ -n "${PIDS:-}" ] && kill -9 $PIDS 2>/dev/null

# 2. iptables: kube-proxy's chains, then our forwarding fence.
[ -n "${KUBE_PROXY:-}" ] && [ -x "$KUBE_PROXY" ] && "$KUBE_PROXY" --cleanup >/dev/null 2>&1
while iptables -D FORWARD -i "$BRIDGE" ! -o "$BRIDGE" -m comment --comment tsgw-node -j DROP 2>/dev/null; do :; done
# kubelet's own chains (KUBE-FIREWALL, KUBE-KUBELET-CANARY, …), which --cleanup leaves: drop the jumps
# to KUBE-* from the built-in chains, then flush and delete every KUBE-* chain.
for bin in iptables ip6tables; do
  for table in filter nat mangle; do
    rules=$("$bin" -t "$table" -S 2>/dev/null) || continue
    echo "$rules" | grep -E '^-A (INPUT|OUTPUT|FORWARD|PREROUTING|POSTROUTING) .*-j KUBE-' | while read -r rule; do
      eval "$bin -t $table -D ${rule#-A }" 2>/dev/null
    done
    chains=$(echo "$rules" | sed -n 's/^-N \(KUBE-[^ ]*\)$/\1/p')
    for c in $chains; do "$bin" -t "$table" -F "$c" 2>/dev/null; done
    for c in $chains; do "$bin" -t "$table" -X "$c" 2>/dev/null; done
  done
done

# 3. Mounts: everything under the state dir and this run's Pod netns, deepest first.
awk -v s="$state/" '{ if (index($5 "/", s) == 1) print $5 }' /proc/self/mountinfo | sort -r | while read -r m; do umount -l "$m" 2>/dev/null; done
for ns in /run/netns/cni-*; do
  [ -e "$ns" ] || continue
  case " ${NETNS_BEFORE:-} " in *" $(basename "$ns") "*) continue ;; esac
  umount -l "$ns" 2>/dev/null; rm -f "$ns"
done

# 4. Network: the bridge (its veths went with the netns) and the Service route.
ip route del "$SERVICE_CIDR" dev "$BRIDGE" 2>/dev/null
ip link del "$BRIDGE" 2>/dev/null

# 5. VM-wide sysctls, as they were before the run.
if [ -n "${SYSCTLS:-}" ]; then
  for kv in $SYSCTLS; do echo "${kv#*=}" > "/proc/sys/${kv%%=*}" 2>/dev/null; done
fi

# 6. Cgroups, deepest first, in every hierarchy.
for h in $(hierarchies); do find "$h" -depth -type d -exec rmdir {} \; 2>/dev/null; done

# 7. Hard-coded host paths the run created (only those that did not exist before).
for p in ${CREATED_PATHS:-}; do rm -rf "$p"; done
rm -rf "$state"
exit 0
