package main

import (
	"context"
	"errors"
	"fmt"
	"os"
)

// jobMetrics is the metrics export of one run or track: the live endpoint
// and, at the end, the textfile.
type jobMetrics struct {
	s    *metricsSettings
	name string
	w    *jobWatch
	stop func() error
}

// startMetrics serves w's metrics when --metrics-addr asks for it. It
// does nothing without metrics flags.
func startMetrics(ctx context.Context, s *metricsSettings, name string, w *jobWatch) (*jobMetrics, error) {
	jm := &jobMetrics{s: s, name: name, w: w}
	if !s.enabled() || s.addr == "" {
		return jm, nil
	}
	stop, err := serveMetrics(ctx, s.addr, newMetricsRegistry(name, w))
	if err != nil {
		return nil, err
	}
	jm.stop = stop
	return jm, nil
}

// finish writes the textfile with the final values and stops the
// endpoint, reporting what failed on stderr.
func (jm *jobMetrics) finish() {
	var errs []error
	if jm.s.textfile != "" {
		if err := writeMetricsTextfile(jm.s.textfile, newMetricsRegistry(jm.name, jm.w)); err != nil {
			errs = append(errs, err)
		}
	}
	if jm.stop != nil {
		if err := jm.stop(); err != nil {
			errs = append(errs, fmt.Errorf("stop the metrics endpoint: %w", err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		fmt.Fprintf(os.Stderr, "rsup: job %s: %v\n", jm.name, err)
	}
}
