package monitor

// ring is a bounded history of usages, oldest first. It allocates its
// storage once.
type ring struct {
	buf   []Usage
	start int
	n     int
}

func newRing(capacity int) *ring { return &ring{buf: make([]Usage, capacity)} }

func (r *ring) push(u Usage) {
	if len(r.buf) == 0 {
		return
	}
	if r.n < len(r.buf) {
		r.buf[(r.start+r.n)%len(r.buf)] = u
		r.n++
		return
	}
	r.buf[r.start] = u
	r.start = (r.start + 1) % len(r.buf)
}

// last returns up to count of the newest entries, newest last; count <= 0
// means all.
func (r *ring) last(count int) []Usage {
	if count <= 0 || count > r.n {
		count = r.n
	}
	out := make([]Usage, count)
	for i := range count {
		out[i] = r.buf[(r.start+r.n-count+i)%len(r.buf)]
	}
	return out
}
