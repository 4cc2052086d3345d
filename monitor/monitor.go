package monitor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"sync"
	"time"

	"github.com/prometheus/procfs"
	"golang.org/x/sys/unix"

	"github.com/rsup/rsup/cgroup"
)

// Event is a state transition of one resource, as passed to callbacks.
type Event struct {
	From, To State
	Usage    Usage
}

// Callback is called on a state transition. It runs on the monitor's
// dispatch goroutine, never on the sampling path: a slow callback delays
// other callbacks, not sampling, and a panicking one is recovered and
// counted in Stats.CallbackPanics.
type Callback func(Event)

// Stats are the monitor's running statistics since it started or was last
// reset.
type Stats struct {
	Since   time.Time
	Samples uint64
	// Peak is the highest utilization seen per resource.
	Peak map[Resource]float64
	// PeakUsed is the highest Used value seen per resource (bytes for
	// memory and disk, tasks for pids).
	PeakUsed map[Resource]uint64
	// WarningEvents and CriticalEvents count entries into those states.
	WarningEvents, CriticalEvents uint64
	// OOMKills is the job's oom_kill count (memory.events).
	OOMKills uint64
	// SampleErrors counts samples that failed.
	SampleErrors uint64
	// CallbackPanics counts recovered panics in callbacks;
	// CallbacksDropped counts events not delivered because callbacks fell
	// too far behind.
	CallbackPanics, CallbacksDropped uint64
	// WriteCapKills counts kills of the job for passing its write cap.
	WriteCapKills uint64
	// Mean is the mean utilization per resource over all samples.
	Mean map[Resource]float64

	sum map[Resource]float64
	n   map[Resource]uint64
}

// source produces the usages of one sample of the host or of a job.
type source interface {
	sample(now time.Time) (sampled, error)
	close() error
}

// sampled is what one sample of a source yields.
type sampled struct {
	usages   []Usage
	oomKills *uint64
	raw      *CgroupSample
}

// Monitor samples one target (the host, or a job cgroup) at an interval.
// Its methods are safe for concurrent use.
type Monitor struct {
	src      source
	interval time.Duration
	log      *slog.Logger
	wake     <-chan struct{} // kernel events that call for a sample now

	mu         sync.Mutex
	thresholds map[Resource]Thresholds
	latest     map[Resource]Usage
	hist       map[Resource]*ring
	histCap    int
	stats      Stats
	callbacks  map[int]callbackEntry
	nextID     int
	raw        *CgroupSample
	onSample   func([]Usage)
	proc       procfs.FS
	procs      map[int]*tracked
	enforce    *cgroup.Job // job whose write cap the monitor enforces

	run      sync.Mutex // held while running
	stop     context.CancelFunc
	finished chan struct{}
	events   chan func()
}

type callbackEntry struct {
	state State
	fn    Callback
}

// newMonitor builds a monitor over src; Options handling lives in New.
func newMonitor(src source, interval time.Duration, history int, log *slog.Logger) *Monitor {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m := &Monitor{
		src: src, interval: interval, log: log,
		thresholds: map[Resource]Thresholds{},
		latest:     map[Resource]Usage{},
		hist:       map[Resource]*ring{},
		histCap:    history,
		callbacks:  map[int]callbackEntry{},
		procs:      map[int]*tracked{},
	}
	for _, r := range Resources() {
		m.thresholds[r] = DefaultThresholds(r)
	}
	m.resetStatsLocked(time.Now())
	return m
}

// SetThresholds sets the thresholds of resource r.
func (m *Monitor) SetThresholds(r Resource, t Thresholds) error {
	if err := t.Validate(); err != nil {
		return fmt.Errorf("%s: %w", r, err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.thresholds[r] = t
	return nil
}

// Thresholds returns the thresholds of r.
func (m *Monitor) Thresholds(r Resource) Thresholds {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.thresholds[r]
}

// OnState registers fn to be called whenever a resource enters state s.
// It returns a function that unregisters it.
func (m *Monitor) OnState(s State, fn Callback) (unregister func()) {
	m.mu.Lock()
	defer m.mu.Unlock()
	id := m.nextID
	m.nextID++
	m.callbacks[id] = callbackEntry{state: s, fn: fn}
	return func() {
		m.mu.Lock()
		defer m.mu.Unlock()
		delete(m.callbacks, id)
	}
}

// LastCgroupSample returns the latest raw reading of the job cgroup's
// files, and false for a host monitor or before the first sample.
func (m *Monitor) LastCgroupSample() (CgroupSample, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.raw == nil {
		return CgroupSample{}, false
	}
	return *m.raw, true
}

// OOMKills returns the job's oom_kill count (memory.events) as of the
// latest sample.
func (m *Monitor) OOMKills() uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.stats.OOMKills
}

// OnSample sets fn to be called with the classified usages of every
// sample, on the sampling goroutine after the monitor's lock is released
// (to record samples; it should be quick). nil removes it.
func (m *Monitor) OnSample(fn func([]Usage)) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.onSample = fn
}

// Usage returns the latest reading of r, and false before the first one.
func (m *Monitor) Usage(r Resource) (Usage, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	u, ok := m.latest[r]
	return u, ok
}

// History returns up to count of the newest readings of r, newest last;
// count <= 0 returns all that are kept.
func (m *Monitor) History(r Resource, count int) []Usage {
	m.mu.Lock()
	defer m.mu.Unlock()
	h, ok := m.hist[r]
	if !ok {
		return nil
	}
	return h.last(count)
}

// Stats returns a copy of the statistics.
func (m *Monitor) Stats() Stats {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.stats
	s.Peak = maps.Clone(s.Peak)
	s.PeakUsed = maps.Clone(s.PeakUsed)
	s.Mean = map[Resource]float64{}
	for r, sum := range s.sum {
		s.Mean[r] = sum / float64(s.n[r])
	}
	s.sum, s.n = nil, nil
	return s
}

// ResetStats starts the statistics afresh. History and states are kept.
func (m *Monitor) ResetStats() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.resetStatsLocked(time.Now())
}

func (m *Monitor) resetStatsLocked(now time.Time) {
	m.stats = Stats{Since: now, Peak: map[Resource]float64{}, PeakUsed: map[Resource]uint64{},
		sum: map[Resource]float64{}, n: map[Resource]uint64{}}
}

// SampleNow takes one sample at once, classifies it and records it.
func (m *Monitor) SampleNow() error {
	s, err := m.src.sample(time.Now())
	var inline []func()
	defer func() {
		for _, call := range inline {
			call()
		}
	}()
	m.mu.Lock()
	defer m.mu.Unlock()
	if err != nil {
		m.stats.SampleErrors++
		return err
	}
	m.stats.Samples++
	m.sampleProcessesLocked(time.Now())
	if s.oomKills != nil {
		m.stats.OOMKills = *s.oomKills
	}
	if s.raw != nil {
		m.raw = s.raw
	}
	classified := make([]Usage, 0, len(s.usages))
	if fn := m.onSample; fn != nil {
		defer func() { inline = append(inline, func() { fn(classified) }) }()
	}
	for _, u := range s.usages {
		prev, seen := m.latest[u.Resource]
		u.State = m.thresholds[u.Resource].Classify(prev.State, u.Utilization)
		classified = append(classified, u)
		if kill := m.enforceLocked(u); kill != nil {
			inline = append(inline, kill)
		}
		m.latest[u.Resource] = u
		h, ok := m.hist[u.Resource]
		if !ok {
			h = newRing(m.histCap)
			m.hist[u.Resource] = h
		}
		h.push(u)
		if u.Utilization > m.stats.Peak[u.Resource] {
			m.stats.Peak[u.Resource] = u.Utilization
		}
		if u.Used > m.stats.PeakUsed[u.Resource] {
			m.stats.PeakUsed[u.Resource] = u.Used
		}
		m.stats.sum[u.Resource] += u.Utilization
		m.stats.n[u.Resource]++
		from := Normal
		if seen {
			from = prev.State
		}
		if u.State == from {
			continue
		}
		switch u.State {
		case Warning:
			m.stats.WarningEvents++
		case Critical:
			m.stats.CriticalEvents++
		}
		m.log.Info("state change", "resource", u.Resource.String(), "from", from.String(), "to", u.State.String(), "utilization", u.Utilization)
		inline = append(inline, m.dispatchLocked(Event{From: from, To: u.State, Usage: u})...)
	}
	return nil
}

// dispatchLocked queues the callbacks for ev. Without a running dispatch
// goroutine (SampleNow on a stopped monitor) it returns them, to be run by
// the caller once the lock is released.
func (m *Monitor) dispatchLocked(ev Event) (inline []func()) {
	for _, cb := range m.callbacks {
		if cb.state != ev.To {
			continue
		}
		call := func() { m.call(cb.fn, ev) }
		if m.events == nil {
			inline = append(inline, call)
			continue
		}
		select {
		case m.events <- call:
		default:
			m.stats.CallbacksDropped++
		}
	}
	return inline
}

// call runs a callback, recovering a panic.
func (m *Monitor) call(fn Callback, ev Event) {
	defer func() {
		if p := recover(); p != nil {
			m.mu.Lock()
			m.stats.CallbackPanics++
			m.mu.Unlock()
			m.log.Error("callback panicked", "resource", ev.Usage.Resource.String(), "state", ev.To.String(), "panic", fmt.Sprint(p))
		}
	}()
	fn(ev)
}

// ErrRunning is returned by Start on a monitor that already runs.
var ErrRunning = errors.New("monitor is already running")

// Start samples at the monitor's interval, and at once when the kernel
// reports an event, until ctx ends or Stop is called. It takes the first
// sample before it returns.
func (m *Monitor) Start(ctx context.Context) error {
	if !m.run.TryLock() {
		return ErrRunning
	}
	ctx, cancel := context.WithCancel(ctx)
	events := make(chan func(), 256)
	m.mu.Lock()
	m.stop, m.events, m.finished = cancel, events, make(chan struct{})
	m.mu.Unlock()
	if err := m.SampleNow(); err != nil {
		m.log.Warn("sample failed", "error", err)
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { // dispatch
		defer wg.Done()
		for {
			select {
			case call := <-events:
				call()
			case <-ctx.Done():
				return
			}
		}
	}()
	go func() { // sample
		defer wg.Done()
		t := time.NewTicker(m.interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			case <-m.wake:
			}
			if err := m.SampleNow(); err != nil {
				m.log.Warn("sample failed", "error", err)
			}
		}
	}()
	finished := m.finished
	go func() {
		wg.Wait()
		close(finished)
	}()
	return nil
}

// Stop stops sampling and returns once the monitor's goroutines have
// exited. Callbacks still queued are dropped. It does nothing on a monitor
// that is not running.
func (m *Monitor) Stop() {
	m.mu.Lock()
	stop, finished := m.stop, m.finished
	m.mu.Unlock()
	if stop == nil {
		return
	}
	stop()
	<-finished
	m.mu.Lock()
	m.stop, m.events, m.finished = nil, nil, nil
	m.mu.Unlock()
	m.run.Unlock()
}

// Close stops the monitor and releases its descriptors and watches.
func (m *Monitor) Close() error {
	m.Stop()
	m.mu.Lock()
	for pid, t := range m.procs {
		unix.Close(t.fd)
		delete(m.procs, pid)
	}
	m.mu.Unlock()
	return m.src.close()
}
