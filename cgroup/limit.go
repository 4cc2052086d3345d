package cgroup

import (
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
)

// Limit is the value of a cgroup limit: a number, or Max for "no limit".
// An unset limit is a nil *Limit; the zero Limit is the number 0.
type Limit struct {
	N   uint64
	Max bool
}

// Max is the unlimited value, written to the kernel as "max".
var Max = Limit{Max: true}

// Value returns a pointer to the numeric limit n.
func Value(n uint64) *Limit { return &Limit{N: n} }

// String returns the limit as the kernel spells it.
func (l Limit) String() string {
	if l.Max {
		return "max"
	}
	return strconv.FormatUint(l.N, 10)
}

// unitScale maps a lower-cased size suffix to its multiplier. K, M, G and T
// are binary (as in the kernel's own memparse and systemd); the explicit
// KB..TB forms are decimal.
var unitScale = map[string]uint64{
	"": 1, "b": 1,
	"k": 1 << 10, "kib": 1 << 10, "kb": 1e3,
	"m": 1 << 20, "mib": 1 << 20, "mb": 1e6,
	"g": 1 << 30, "gib": 1 << 30, "gb": 1e9,
	"t": 1 << 40, "tib": 1 << 40, "tb": 1e12,
}

// ParseBytes parses a size or a byte rate: a plain number of bytes, or a
// number with one of the suffixes K M G T / KiB MiB GiB TiB (1024-based) or
// KB MB GB TB (1000-based), case-insensitive; or "max". A fraction is
// allowed with a suffix ("1.5G") and rounds down to whole bytes.
func ParseBytes(s string) (Limit, error) {
	t := strings.TrimSpace(s)
	if strings.EqualFold(t, "max") {
		return Max, nil
	}
	i := 0
	for i < len(t) && (t[i] >= '0' && t[i] <= '9' || t[i] == '.') {
		i++
	}
	num, unit := t[:i], strings.ToLower(strings.TrimSpace(t[i:]))
	scale, ok := unitScale[unit]
	if num == "" || !ok {
		return Limit{}, fmt.Errorf("invalid size %q: want bytes, a number with K, M, G, T (1024-based), KB, MB, GB, TB (1000-based) or KiB..TiB, or \"max\"", s)
	}
	r, ok := new(big.Rat).SetString(num)
	if !ok {
		return Limit{}, fmt.Errorf("invalid size %q: %q is not a number", s, num)
	}
	if scale == 1 && !r.IsInt() {
		return Limit{}, fmt.Errorf("invalid size %q: a plain byte count must be a whole number", s)
	}
	r.Mul(r, new(big.Rat).SetInt(new(big.Int).SetUint64(scale)))
	n := new(big.Int).Quo(r.Num(), r.Denom())
	if !n.IsInt64() {
		return Limit{}, fmt.Errorf("invalid size %q: larger than %d bytes", s, int64(math.MaxInt64))
	}
	return Limit{N: n.Uint64()}, nil
}

// ParseCount parses a whole number or "max", for limits such as pids.max
// and IOPS.
func ParseCount(s string) (Limit, error) {
	t := strings.TrimSpace(s)
	if strings.EqualFold(t, "max") {
		return Max, nil
	}
	n, err := strconv.ParseUint(t, 10, 63)
	if err != nil {
		return Limit{}, fmt.Errorf("invalid count %q: want a whole number or \"max\"", s)
	}
	return Limit{N: n}, nil
}
