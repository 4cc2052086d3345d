package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
)

// moduleRoot returns the directory holding go.mod for the current directory.
func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("`go env GOMOD` failed: %v; is the go tool in PATH?", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("not inside the rsup module: run from the repository (go env GOMOD is empty), or pass -test-binary and -rsup-binary")
	}
	return filepath.Dir(gomod), nil
}

// goBuild runs the go tool in dir with cgo off, so the result runs in the
// libc-less VM. Its output goes to stderr to keep stdout for the command.
func goBuild(dir, out string, args ...string) error {
	cmd := exec.Command("go", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	var stderr bytes.Buffer
	cmd.Stdout = os.Stderr
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		os.Stderr.Write(stderr.Bytes())
		return fmt.Errorf("`go %s` in %s failed: %v", strings.Join(args, " "), dir, err)
	}
	os.Stderr.Write(stderr.Bytes())
	if _, err := os.Stat(out); err != nil {
		// go test -c writes nothing when the package has no test files.
		return fmt.Errorf("`go %s` in %s produced no %s (does the package have files with the build tags used?)", strings.Join(args, " "), dir, out)
	}
	return nil
}

// sharedTestdata are directories of the module, outside
// integration/testdata, that the integration suite reads.
var sharedTestdata = []string{"policy/testdata/bad"}

// buildBinaries builds whatever the flags did not supply and, from inside
// the module, picks up ./integration/testdata.
func buildBinaries(cfg *config, dir string) error {
	root, err := moduleRoot()
	if err != nil {
		if cfg.testBinary != "" && cfg.rsupBinary != "" {
			return nil // nothing to build, no testdata to find
		}
		return err
	}
	if cfg.testBinary == "" {
		out := filepath.Join(dir, "integration.test")
		logf("building ./integration test binary (go test -c -tags integration)")
		if err := goBuild(root, out, "test", "-c", "-tags", "integration", "-o", out, "./integration"); err != nil {
			return err
		}
		cfg.testBinary = out
	}
	if cfg.rsupBinary == "" {
		out := filepath.Join(dir, "rsup")
		logf("building ./cmd/rsup")
		if err := goBuild(root, out, "build", "-o", out, "./cmd/rsup"); err != nil {
			return err
		}
		cfg.rsupBinary = out
	}
	if cfg.testdata == "" {
		if st, err := os.Stat(filepath.Join(root, "integration", "testdata")); err == nil && st.IsDir() {
			cfg.testdata = filepath.Join(root, "integration", "testdata")
		}
	}
	// Other packages' test corpora that the suite reads, at the same
	// path relative to the package dir as on the host.
	for _, rel := range sharedTestdata {
		if st, err := os.Stat(filepath.Join(root, rel)); err == nil && st.IsDir() {
			cfg.trees = append(cfg.trees, tree{Host: filepath.Join(root, rel), Guest: path.Join(path.Dir(guestWorkDir), rel)})
		}
	}
	return nil
}
