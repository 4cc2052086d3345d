// Package integration holds rsup's tests against a real kernel. They are
// built only with the "integration" build tag, need root, and most need a
// cgroup v2 hierarchy with the cpu, io, memory and pids controllers at
// /sys/fs/cgroup; each test skips with the exact reason where that is
// missing. On hosts without such a hierarchy, ./integration/vmrun boots
// them in a VM.
package integration
