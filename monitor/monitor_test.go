package monitor

import (
	"context"
	"errors"
	"math"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeSource yields the memory utilizations it is given, one per sample.
type fakeSource struct {
	mu     sync.Mutex
	values []float64
	i      int
	err    error
	closed bool
}

func (f *fakeSource) sample(now time.Time) (sampled, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return sampled{}, f.err
	}
	v := f.values[f.i%len(f.values)]
	f.i++
	kills := uint64(f.i / 3)
	return sampled{usages: []Usage{{Resource: Memory, Utilization: v, Used: uint64(v * 1000), Total: 1000, Timestamp: now}}, oomKills: &kills}, nil
}

func (f *fakeSource) close() error { f.closed = true; return nil }

func TestThresholdsValidate(t *testing.T) {
	for _, tc := range []struct {
		th Thresholds
		ok bool
	}{
		{Thresholds{Warning: 0.7, Critical: 0.9}, true},
		{Thresholds{Warning: 0.7, Critical: 1}, true},
		{Thresholds{Warning: 0.8, Critical: 0.95, Clear: 0.7}, true},
		{Thresholds{Warning: 0, Critical: 0.9}, false},
		{Thresholds{Warning: 0.9, Critical: 0.9}, false},
		{Thresholds{Warning: 0.5, Critical: 1.1}, false},
		{Thresholds{Warning: math.NaN(), Critical: 0.9}, false},
		{Thresholds{Warning: 0.5, Critical: 0.9, Clear: 0.6}, false},
		{Thresholds{Warning: 0.5, Critical: 0.9, Clear: -0.1}, false},
	} {
		if err := tc.th.Validate(); (err == nil) != tc.ok {
			t.Errorf("%+v: Validate = %v, want ok=%v", tc.th, err, tc.ok)
		}
	}
	for _, r := range Resources() {
		if err := DefaultThresholds(r).Validate(); err != nil {
			t.Errorf("default thresholds of %s: %v", r, err)
		}
	}
}

func TestClassifyHysteresis(t *testing.T) {
	th := Thresholds{Warning: 0.8, Critical: 0.95, Clear: 0.7}
	state := Normal
	var got []State
	for _, u := range []float64{0.5, 0.79, 0.8, 0.75, 0.96, 0.9, 0.72, 0.69, 0.75} {
		state = th.Classify(state, u)
		got = append(got, state)
	}
	want := []State{Normal, Normal, Warning, Warning, Critical, Warning, Warning, Normal, Normal}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("states %v, want %v", got, want)
		}
	}
}

func TestRing(t *testing.T) {
	r := newRing(3)
	if got := r.last(0); len(got) != 0 {
		t.Errorf("empty ring: %v", got)
	}
	for i := range 5 {
		r.push(Usage{Used: uint64(i)})
	}
	got := r.last(0)
	if len(got) != 3 || got[0].Used != 2 || got[2].Used != 4 {
		t.Errorf("last(0) = %v, want 2,3,4", got)
	}
	if got := r.last(2); len(got) != 2 || got[0].Used != 3 || got[1].Used != 4 {
		t.Errorf("last(2) = %v, want 3,4", got)
	}
}

func TestParseNames(t *testing.T) {
	for _, r := range Resources() {
		p, err := ParseResource(r.String())
		if err != nil || p != r {
			t.Errorf("ParseResource(%q) = %v, %v", r, p, err)
		}
	}
	if _, err := ParseResource("gpu"); err == nil {
		t.Error("ParseResource(gpu) accepted")
	}
	for _, s := range []State{Normal, Warning, Critical} {
		if p, err := ParseState(s.String()); err != nil || p != s {
			t.Errorf("ParseState(%q) = %v, %v", s, p, err)
		}
	}
}

func TestSampleClassifiesAndCounts(t *testing.T) {
	src := &fakeSource{values: []float64{0.5, 0.85, 0.97, 0.9, 0.6, 0.99}}
	m := newMonitor(src, time.Hour, 4, nil)
	var got []Event
	unregister := m.OnState(Critical, func(e Event) { got = append(got, e) })
	warn := 0
	m.OnState(Warning, func(Event) { warn++ })
	for range 6 {
		if err := m.SampleNow(); err != nil {
			t.Fatal(err)
		}
	}
	st := m.Stats()
	if st.Samples != 6 || st.WarningEvents != 2 || st.CriticalEvents != 2 {
		t.Errorf("stats %+v: want 6 samples, 2 warning and 2 critical events", st)
	}
	if st.Peak[Memory] != 0.99 || st.PeakUsed[Memory] != 990 || st.OOMKills != 2 {
		t.Errorf("peaks %v %v oom %d", st.Peak, st.PeakUsed, st.OOMKills)
	}
	if len(got) != 2 || got[0].From != Warning || got[0].To != Critical || got[1].From != Normal {
		t.Errorf("critical callbacks: %+v", got)
	}
	if warn != 2 {
		t.Errorf("warning callbacks: %d", warn)
	}
	h := m.History(Memory, 0)
	if len(h) != 4 || h[3].Utilization != 0.99 || h[3].State != Critical {
		t.Errorf("history %+v", h)
	}
	if u, ok := m.Usage(Memory); !ok || u.Utilization != 0.99 {
		t.Errorf("latest %+v %v", u, ok)
	}
	unregister()
	m.ResetStats()
	if st := m.Stats(); st.Samples != 0 || len(st.Peak) != 0 {
		t.Errorf("after reset: %+v", st)
	}
	src.mu.Lock()
	src.err = errors.New("boom")
	src.mu.Unlock()
	if err := m.SampleNow(); err == nil || m.Stats().SampleErrors != 1 {
		t.Errorf("failed sample: %v, %+v", err, m.Stats())
	}
}

// A callback that blocks does not hold up sampling, and one that panics is
// recovered and counted.
func TestCallbacksDoNotBlockSampling(t *testing.T) {
	src := &fakeSource{values: []float64{0.1, 0.99}}
	m := newMonitor(src, time.Millisecond, 16, nil)
	release := make(chan struct{})
	var calls atomic.Int32
	m.OnState(Critical, func(Event) {
		calls.Add(1)
		<-release
	})
	m.OnState(Critical, func(Event) { panic("callback bug") })
	if err := m.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := m.Start(context.Background()); !errors.Is(err, ErrRunning) {
		t.Errorf("second Start: %v", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for m.Stats().Samples < 50 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if n := m.Stats().Samples; n < 50 {
		t.Errorf("only %d samples while a callback blocked", n)
	}
	close(release)
	for m.Stats().CallbackPanics == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if m.Stats().CallbackPanics == 0 {
		t.Error("the panicking callback was not recovered and counted")
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if !src.closed {
		t.Error("Close did not close the source")
	}
	n := m.Stats().Samples
	time.Sleep(20 * time.Millisecond)
	if m.Stats().Samples != n {
		t.Error("sampling went on after Stop returned")
	}
	t.Logf("samples %d, callbacks %d, panics %d, dropped %d", n, calls.Load(), m.Stats().CallbackPanics, m.Stats().CallbacksDropped)
}

// Stop returns only once sampling has stopped, and the monitor can start
// again.
func TestStopStart(t *testing.T) {
	m := newMonitor(&fakeSource{values: []float64{0.1}}, time.Millisecond, 8, nil)
	for range 3 {
		if err := m.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond)
		m.Stop()
	}
	m.Stop() // a stopped monitor: no-op
	ctx, cancel := context.WithCancel(context.Background())
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	cancel()
	m.Stop()
}

func TestSetThresholds(t *testing.T) {
	m := newMonitor(&fakeSource{values: []float64{0.75}}, time.Hour, 8, nil)
	if err := m.SetThresholds(Memory, Thresholds{Warning: 0.9, Critical: 0.8}); err == nil {
		t.Error("inverted thresholds accepted")
	}
	if err := m.SetThresholds(Memory, Thresholds{Warning: 0.7, Critical: 0.8}); err != nil {
		t.Fatal(err)
	}
	_ = m.SampleNow()
	if u, _ := m.Usage(Memory); u.State != Warning {
		t.Errorf("state %v at 0.75 with warning 0.7", u.State)
	}
}

// The monitor's memory stays flat: history is capped.
func TestHistoryMemoryFlat(t *testing.T) {
	m := newMonitor(&fakeSource{values: []float64{0.1, 0.5, 0.9}}, time.Hour, 100, nil)
	for range 10000 {
		_ = m.SampleNow()
	}
	if n := len(m.History(Memory, 0)); n != 100 {
		t.Errorf("history holds %d, want 100", n)
	}
}

func BenchmarkSampleNowFakeSource(b *testing.B) {
	m := newMonitor(&fakeSource{values: []float64{0.1, 0.5, 0.9}}, time.Hour, 3600, nil)
	b.ReportAllocs()
	for b.Loop() {
		_ = m.SampleNow()
	}
}

func TestOnSampleAndMean(t *testing.T) {
	m := newMonitor(&fakeSource{values: []float64{0.5, 0.9}}, time.Hour, 8, nil)
	var seen []Usage
	m.OnSample(func(u []Usage) { seen = append(seen, u...) })
	_ = m.SampleNow()
	_ = m.SampleNow()
	if len(seen) != 2 || seen[1].State != Warning {
		t.Errorf("OnSample saw %+v, want two classified usages", seen)
	}
	if mean := m.Stats().Mean[Memory]; math.Abs(mean-0.7) > 1e-9 {
		t.Errorf("mean %v, want 0.7", mean)
	}
	if _, ok := m.LastCgroupSample(); ok {
		t.Error("a source without raw samples reported one")
	}
}

// The monitor's own memory stays flat over 10 000 samples once its history
// is full: the heap after 10 000 samples is within a few KiB of the heap
// after the first 1 000.
func TestMonitorHeapFlat(t *testing.T) {
	m := newMonitor(&fakeSource{values: []float64{0.1, 0.5, 0.9, 0.97}}, time.Hour, 500, nil)
	m.OnState(Critical, func(Event) {})
	heap := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	for range 1000 {
		_ = m.SampleNow()
	}
	before := heap()
	for range 9000 {
		_ = m.SampleNow()
	}
	after := heap()
	growth := int64(after) - int64(before)
	t.Logf("measured: heap %d bytes after 1000 samples, %d after 10000 (growth %d)", before, after, growth)
	if growth > 64<<10 {
		t.Errorf("heap grew by %d bytes over 9000 samples with history capped at 500", growth)
	}
}
