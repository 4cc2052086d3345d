//go:build integration

package integration

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// metricValue returns the value of the first sample of name in a text
// exposition, and false when there is none.
func metricValue(text, name string) (float64, bool) {
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 2 || (f[0] != name && !strings.HasPrefix(f[0], name+"{")) {
			continue
		}
		v, err := strconv.ParseFloat(f[1], 64)
		return v, err == nil
	}
	return 0, false
}

// The metrics endpoint, scraped while a job holds its memory, agrees with
// the job's cgroup files; the textfile written at the end has the final
// values.
func TestMetricsEndpoint(t *testing.T) {
	root := requireV2(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	textfile := filepath.Join(t.TempDir(), "rsup.prom")
	b := startRsup(t, append([]string{"run", "--cgroup-root", root, "--name", "metered", "--memory", "128M", "--pids", "64",
		"--interval", "100ms", "--metrics-addr", addr, "--metrics-textfile", textfile, "--"},
		helper("policy-job", "to:40M", "hold:4s")...)...)
	job := filepath.Join(root, "metered")
	var body string
	deadline := time.Now().Add(30 * time.Second)
	for {
		if time.Now().After(deadline) {
			t.Fatalf("no scrape with the job at 40M within 30s; last:\n%s\nrsup:\n%s", body, b.stderr())
		}
		time.Sleep(200 * time.Millisecond)
		resp, err := http.Get("http://" + addr + "/metrics")
		if err != nil {
			continue
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		body = string(raw)
		if v, ok := metricValue(body, "rsup_memory_current_bytes"); ok && v >= 40<<20 {
			break
		}
	}
	// Held memory: the cgroup file and the last sample agree but for a
	// few pages of the helper's own.
	cur, err := strconv.ParseFloat(readCg(t, job+"/memory.current"), 64)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := metricValue(body, "rsup_memory_current_bytes")
	if d := got - cur; d > 1<<20 || d < -(1<<20) {
		t.Errorf("rsup_memory_current_bytes %.0f, memory.current %.0f", got, cur)
	}
	for name, want := range map[string]float64{"rsup_memory_max_bytes": 128 << 20, "rsup_pids_max": 64} {
		if v, ok := metricValue(body, name); !ok || v != want {
			t.Errorf("%s = %v (present %v), want %v", name, v, ok, want)
		}
	}
	pids, _ := metricValue(body, "rsup_pids_current")
	filePids, _ := strconv.ParseFloat(readCg(t, job+"/pids.current"), 64)
	if pids != filePids {
		t.Errorf("rsup_pids_current %v, pids.current %v", pids, filePids)
	}
	if code := b.wait(t); code != 0 {
		t.Fatalf("rsup exited %d:\n%s", code, b.stderr())
	}
	final, err := os.ReadFile(textfile)
	if err != nil {
		t.Fatal(err)
	}
	peak, ok := metricValue(string(final), "rsup_memory_peak_bytes")
	if !ok || peak < 40<<20 {
		t.Errorf("textfile: rsup_memory_peak_bytes %v (present %v), want at least 40M:\n%s", peak, ok, final)
	}
	t.Logf("measured: scraped rsup_memory_current_bytes %.0f vs memory.current %.0f (diff %+.0f); pids %v vs %v; textfile peak %.0f, %d bytes",
		got, cur, got-cur, pids, filePids, peak, len(final))
}
