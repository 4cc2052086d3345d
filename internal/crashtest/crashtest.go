// Package crashtest lets the integration suite kill rsup with SIGKILL at
// chosen points of a job's life, to prove that rsup gc cleans up after a
// supervisor that died anywhere. Nothing happens unless the environment
// variable _RSUP_CRASH_AT names the point.
package crashtest

import (
	"os"

	"golang.org/x/sys/unix"
)

// Env is the variable that names the point to die at.
const Env = "_RSUP_CRASH_AT"

// At kills the calling process with SIGKILL if point is the one named in
// the environment.
func At(point string) {
	if os.Getenv(Env) == point {
		_ = unix.Kill(os.Getpid(), unix.SIGKILL)
		select {} // SIGKILL is delivered before this returns
	}
}
