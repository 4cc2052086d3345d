package cgroup

import (
	"fmt"
	"strings"
)

// reservedPrefixes are the prefixes of cgroup interface files. A job named
// like one ("memory.max") could never be created, or worse, would name a
// control file instead of a directory.
var reservedPrefixes = []string{"cgroup.", "cpu.", "cpuset.", "memory.", "io.", "pids.", "hugetlb.", "rdma.", "misc.", "irq."}

// Names of cgroups that rsup itself keeps in its hierarchy.
const (
	SupervisorLeaf = "supervisor"
	EvacuatedLeaf  = "init"
)

// ValidateName checks that name is usable as a job cgroup: one path element,
// at most 255 bytes, printable, not an interface file's name and not one of
// rsup's own cgroups.
func ValidateName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("invalid job name: empty")
	case len(name) > 255:
		return fmt.Errorf("invalid job name %.40q...: %d bytes, the limit is 255", name, len(name))
	case name == "." || name == "..":
		return fmt.Errorf("invalid job name %q: not a directory name", name)
	case strings.ContainsRune(name, '/'):
		return fmt.Errorf("invalid job name %q: contains '/'; a job name is a single cgroup directory name", name)
	case name == SupervisorLeaf || name == EvacuatedLeaf:
		return fmt.Errorf("invalid job name %q: reserved for rsup's own cgroup", name)
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("invalid job name %q: contains a control character", name)
		}
	}
	for _, p := range reservedPrefixes {
		if strings.HasPrefix(name, p) {
			return fmt.Errorf("invalid job name %q: names starting with %q belong to cgroup interface files", name, p)
		}
	}
	return nil
}
