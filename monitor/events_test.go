package monitor

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// inotify reports a modification of memory.events; on cgroupfs the kernel
// raises it when a counter changes, here the test writes the file.
func TestWatcherWakesOnEventsFile(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"memory.events", "cgroup.events"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("populated 1\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	w, err := newWatcher(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer w.close()
	start := time.Now()
	if err := os.WriteFile(filepath.Join(dir, "memory.events"), []byte("oom 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	select {
	case <-w.wake:
		t.Logf("woken %v after the write", time.Since(start))
	case <-time.After(5 * time.Second):
		t.Fatal("no wake-up after memory.events changed")
	}
	if err := w.close(); err != nil {
		t.Fatal(err)
	}
}

func TestWatcherErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := newWatcher(dir, []PSITrigger{{Resource: Memory, StallUS: 1, WindowUS: 1}}); err == nil {
		t.Error("a PSI trigger on memory (not a pressure resource) was accepted")
	}
	if _, err := newWatcher(dir, []PSITrigger{{Resource: MemoryPressure, StallUS: 100000, WindowUS: 1000000}}); err == nil {
		t.Error("a PSI trigger without a pressure file was accepted")
	}
	// No events files at all (controllers off): the watcher still works.
	w, err := newWatcher(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.close(); err != nil {
		t.Fatal(err)
	}
	if got := (PSITrigger{Resource: IOPressure, Full: true, StallUS: 150000, WindowUS: 1000000}).String(); got != "full 150000 1000000" {
		t.Errorf("trigger %q", got)
	}
}
