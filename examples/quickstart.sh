#!/bin/sh
# Three jobs under limits that the kernel enforces. Needs rsup on PATH, root,
# and a cgroup v2 host (scripts/demo runs it in a VM elsewhere).

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
