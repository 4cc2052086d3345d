// Command rsup runs and supervises commands inside cgroup v2 job cgroups
// whose cpu, memory, io and pids limits the kernel enforces.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/rsup/rsup/supervisor"
)

func main() {
	supervisor.RunShim()
	err := newApp().RunContext(context.Background(), os.Args)
	code := exitCode(err)
	if err != nil && !silent(err) {
		fmt.Fprintf(os.Stderr, "rsup: %v\n", err)
	}
	os.Exit(code)
}
