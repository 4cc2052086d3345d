package policy

import (
	"strings"
	"testing"
)

func TestExplain(t *testing.T) {
	p, err := Load("../examples/policies/memory-leak-canary.toml")
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	if err := p.Explain(&b); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"memory.max=2147483648",
		"memory: warning from 0.75, critical from 0.9, back to normal only below 0.65",
		`Rule "leak-suspected": when memory is warning or worse for 30s, at most every 10m0s while it lasts:`,
		"send SIGUSR1 to the main process",
		"lower memory.high to 1782579200, until the resource is back to normal",
		`Rule "leak-kill": when memory is critical or worse for 2m0s, once each time it happens:`,
		"send SIGTERM to every process of the job, and kill what is left through cgroup.kill after 20s",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("explanation lacks %q:\n%s", want, b.String())
		}
	}
}
