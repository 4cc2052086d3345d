#!/bin/sh
# Four jobs under limits that the kernel enforces, the last under a policy.
# Needs rsup on PATH, root, and a cgroup v2 host (scripts/demo runs it in a
# VM elsewhere).

echo '## 1. A job that wants 256 MiB, under --memory 64M: the kernel OOM-kills it (exit 137).'
rsup run -v --name hog --memory 64M -- \
	awk 'BEGIN { s = "x"; while (length(s) < 256 * 1024 * 1024) s = s s; print "allocated", length(s) }'
echo "exit status: $?"

echo
echo '## 2. A busy loop under --cpu 50%: about half a CPU second per wall second.'
rsup run -v --name spin --cpu 50% -- \
	sh -c 'end=$(( $(date +%s) + 3 )); while [ "$(date +%s)" -lt "$end" ]; do :; done'
echo "exit status: $?"

echo
echo '## 3. A command that leaves a daemon behind: rsup kills it with the job.'
rsup run -v --name daemon -- sh -c 'setsid sleep 600 & echo "left sleep $! behind"'
echo "exit status: $?"

echo
echo '## 4. A leaking job under a policy: logged at warning, stopped by the rule at critical.'
cat > /tmp/rsup-leak-guard.toml <<'POLICY'
[limits]
memory = "128M"

[thresholds]
memory = { warning = 0.5, critical = 0.8 }

[[rule]]
name = "leak-warning"
resource = "memory"
state = "warning"
actions = [ { type = "log", level = "warn" } ]

[[rule]]
name = "leak-critical"
resource = "memory"
state = "critical"
for = "500ms"
actions = [ { type = "kill", signal = "SIGTERM", grace = "2s" } ]
POLICY
# The job "leaks" 4 MiB a tick into a tmpfs file, which is charged to its
# memory cgroup like any other memory it uses.
rsup run --name leak --policy /tmp/rsup-leak-guard.toml --interval 200ms -- \
	sh -c 'while :; do head -c 4194304 /dev/zero >> /dev/shm/rsup-leak; sleep 0.1; done'
echo "exit status: $?"
rm -f /dev/shm/rsup-leak /tmp/rsup-leak-guard.toml
