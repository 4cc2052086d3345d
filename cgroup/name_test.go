package cgroup

import (
	"strconv"
	"strings"
	"testing"
)

func TestValidateName(t *testing.T) {
	t.Parallel()
	for _, name := range []string{
		"job-1", "a.b", "a", "web_server", "job 1", "ünïcode", "memory", "cgroup", "init2", "supervisor-1", "...",
		strings.Repeat("x", 255),
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if err := ValidateName(name); err != nil {
				t.Errorf("ValidateName(%q): %v", name, err)
			}
		})
	}
}

func TestValidateNameRejects(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, msg string
	}{
		{"", "empty"},
		{".", "not a directory name"},
		{"..", "not a directory name"},
		{"a/b", "contains '/'"},
		{"/", "contains '/'"},
		{"../x", "contains '/'"},
		{"x\n", "control character"},
		{"a\tb", "control character"},
		{"\x00", "control character"},
		{"\x7f", "control character"},
		{"cgroup.procs", `"cgroup."`},
		{"cgroup.kill", `"cgroup."`},
		{"memory.max", `"memory."`},
		{"cpu.weight", `"cpu."`},
		{"cpuset.cpus", `"cpuset."`},
		{"io.max", `"io."`},
		{"pids.max", `"pids."`},
		{"hugetlb.2MB.max", `"hugetlb."`},
		{"rdma.max", `"rdma."`},
		{"misc.max", `"misc."`},
		{"irq.pressure", `"irq."`},
		{"supervisor", "reserved for rsup"},
		{"init", "reserved for rsup"},
	}
	for _, tt := range tests {
		t.Run(strconv.Quote(tt.name), func(t *testing.T) {
			t.Parallel()
			err := ValidateName(tt.name)
			want := []string{tt.msg}
			if tt.name != "" {
				want = append(want, strconv.Quote(tt.name))
			}
			errorContains(t, err, want...)
		})
	}
}

func TestValidateNameTooLong(t *testing.T) {
	t.Parallel()
	name := strings.Repeat("n", 256)
	err := ValidateName(name)
	errorContains(t, err, "256 bytes", "the limit is 255", strings.Repeat("n", 40))
	if strings.Contains(err.Error(), strings.Repeat("n", 41)) {
		t.Errorf("error quotes more than 40 bytes of the name: %q", err)
	}
	// Length counts bytes, not runes: 128 two-byte runes are 256 bytes.
	errorContains(t, ValidateName(strings.Repeat("é", 128)), "256 bytes")
}
