package monitor

import (
	"fmt"
	"math"
)

// Thresholds classify a resource's utilization. A resource is Warning from
// Warning up and Critical from Critical up. Clear adds hysteresis: once
// Warning or worse, it returns to Normal only below Clear (a Clear of 0
// means Warning), so a value hovering at the threshold does not flap.
type Thresholds struct {
	Warning  float64
	Critical float64
	Clear    float64
}

// Validate checks 0 < Warning < Critical <= 1 and 0 <= Clear <= Warning
// (for pressure, fractions of time stalled; all without NaN).
func (t Thresholds) Validate() error {
	for _, v := range []float64{t.Warning, t.Critical, t.Clear} {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return fmt.Errorf("thresholds %+v: not a number", t)
		}
	}
	switch {
	case t.Warning <= 0 || t.Warning >= t.Critical || t.Critical > 1:
		return fmt.Errorf("thresholds warning=%g critical=%g: want 0 < warning < critical <= 1", t.Warning, t.Critical)
	case t.Clear < 0 || t.Clear > t.Warning:
		return fmt.Errorf("threshold clear=%g: want 0 <= clear <= warning (%g)", t.Clear, t.Warning)
	}
	return nil
}

// DefaultThresholds are the thresholds of each resource until set
// otherwise: those of the ResourceManager for cpu, memory and disk, and
// for pressure the share of time stalled that hurts.
func DefaultThresholds(r Resource) Thresholds {
	switch r {
	case CPU:
		return Thresholds{Warning: 0.7, Critical: 0.9}
	case Memory:
		return Thresholds{Warning: 0.8, Critical: 0.95}
	case Disk:
		return Thresholds{Warning: 0.85, Critical: 0.95}
	case CPUPressure, MemoryPressure, IOPressure:
		return Thresholds{Warning: 0.10, Critical: 0.40}
	}
	return Thresholds{Warning: 0.8, Critical: 0.95}
}

// Classify returns the state for utilization u, given the state before.
func (t Thresholds) Classify(prev State, u float64) State {
	switch {
	case u >= t.Critical:
		return Critical
	case u >= t.Warning:
		return Warning
	case prev != Normal && t.Clear > 0 && u >= t.Clear:
		// Between Clear and Warning a resource that was above stays at
		// Warning.
		return Warning
	}
	return Normal
}
