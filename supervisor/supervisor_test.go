package supervisor

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"testing"

	"golang.org/x/sys/unix"
)

func TestStatus(t *testing.T) {
	for _, tc := range []struct {
		r    Result
		want int
	}{
		{Result{ExitCode: 0}, 0},
		{Result{ExitCode: 255}, 255},
		{Result{ExitCode: -1, Signal: unix.SIGKILL}, 137},
		{Result{ExitCode: -1, Signal: unix.SIGSEGV}, 139},
	} {
		if got := tc.r.Status(); got != tc.want {
			t.Errorf("%+v: status %d, want %d", tc.r, got, tc.want)
		}
	}
}

func TestStartErrorCodes(t *testing.T) {
	pathErr := func(e error) error { return &os.PathError{Op: "fork/exec", Path: "/x", Err: e} }
	for _, tc := range []struct {
		err  error
		want int
	}{
		{pathErr(unix.ENOENT), ExitNotFound},
		{pathErr(unix.EACCES), ExitFailure}, // the file passed access(X_OK): the cgroup refused clone3
		{pathErr(unix.ENOEXEC), ExitNotRunnable},
		{pathErr(unix.ETXTBSY), ExitNotRunnable},
		{pathErr(unix.ENOMEM), ExitFailure},
	} {
		var se *StartError
		if err := execError("/x", "/sys/fs/cgroup/rsup/j", tc.err); !errors.As(err, &se) || se.Code != tc.want {
			t.Errorf("execError(%v) = %v, want code %d", tc.err, err, tc.want)
		}
	}
	var se *StartError
	if err := lookPathError("x", &exec.Error{Name: "x", Err: exec.ErrNotFound}); !errors.As(err, &se) || se.Code != ExitNotFound {
		t.Errorf("not found: %v", err)
	}
	if err := lookPathError("./x", &exec.Error{Name: "./x", Err: fs.ErrPermission}); !errors.As(err, &se) || se.Code != ExitNotRunnable {
		t.Errorf("not executable: %v", err)
	}
}

func TestCloneRefused(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{&os.PathError{Op: "fork/exec", Err: unix.ENOSYS}, true},
		{&os.PathError{Op: "fork/exec", Err: unix.EPERM}, true},
		{&os.PathError{Op: "fork/exec", Err: unix.EINVAL}, true},
		{&os.PathError{Op: "fork/exec", Err: unix.ENOENT}, false},
		{&os.PathError{Op: "fork/exec", Err: unix.EACCES}, false},
		{fmt.Errorf("other: %w", unix.ENOSYS), false},
	} {
		if got := cloneRefused(tc.err); got != tc.want {
			t.Errorf("cloneRefused(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

func TestRunNeedsArgsAndJob(t *testing.T) {
	_, err := Run(t.Context(), Config{})
	var se *StartError
	if !errors.As(err, &se) || se.Code != ExitFailure {
		t.Errorf("Run with an empty Config: %v", err)
	}
}
