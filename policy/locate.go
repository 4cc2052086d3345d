package policy

import (
	"strconv"
	"strings"
)

// position is a 1-based line and column in a policy file.
type position struct {
	Line, Col int
}

// locator maps key paths to where they are written. The TOML library keeps
// key positions to itself (MetaData exposes none), so once the library has
// accepted the file as valid TOML, a small scanner walks it again and notes
// where every key, table header and array element starts.
//
// Paths are spelled as in error messages: "rule[1].actions[0].signal".
// Each position is also filed under the path without indices
// ("rule.actions.signal"), first occurrence winning, which is how the
// library names undecoded keys.
type locator struct {
	exact map[string]position
	bare  map[string]position
}

// find returns the position of path, or of its nearest enclosing key that
// has one; ok is false when none is known.
func (l *locator) find(path string) (position, bool) {
	if l == nil {
		return position{}, false
	}
	for p := path; p != ""; p = parentPath(p) {
		if pos, ok := l.exact[p]; ok {
			return pos, true
		}
	}
	return position{}, false
}

// findBare looks up a path without indices, as MetaData.Undecoded gives.
func (l *locator) findBare(path string) (position, bool) {
	if l == nil {
		return position{}, false
	}
	for p := path; p != ""; p = parentPath(p) {
		if pos, ok := l.bare[p]; ok {
			return pos, true
		}
	}
	return position{}, false
}

// parentPath drops the last element of a path ("a.b[2]" -> "a.b" -> "a").
func parentPath(p string) string {
	if strings.HasSuffix(p, "]") {
		if i := strings.LastIndexByte(p, '['); i >= 0 {
			return p[:i]
		}
	}
	if i := strings.LastIndexByte(p, '.'); i >= 0 {
		return p[:i]
	}
	return ""
}

// keyPath is a path under construction: the spelling with indices and the
// one without.
type keyPath struct {
	exact, bare string
}

func (p keyPath) key(k string) keyPath {
	if p.exact == "" {
		return keyPath{k, k}
	}
	return keyPath{p.exact + "." + k, p.bare + "." + k}
}

func (p keyPath) index(i int) keyPath {
	return keyPath{p.exact + "[" + strconv.Itoa(i) + "]", p.bare}
}

type scanner struct {
	src       string
	i         int
	line, col int // of src[i], 1-based
	loc       *locator
	arrays    map[string]int // array-of-tables path -> index of its last element
}

// locate scans src, which the TOML library has already accepted. It never
// fails: on anything it does not follow it stops, keeping what it found.
func locate(src string) *locator {
	s := &scanner{
		src:    src,
		line:   1,
		col:    1,
		loc:    &locator{exact: map[string]position{}, bare: map[string]position{}},
		arrays: map[string]int{},
	}
	s.document()
	return s.loc
}

func (s *scanner) eof() bool { return s.i >= len(s.src) }

func (s *scanner) peek() byte {
	if s.eof() {
		return 0
	}
	return s.src[s.i]
}

func (s *scanner) advance() {
	if s.eof() {
		return
	}
	if s.src[s.i] == '\n' {
		s.line++
		s.col = 1
	} else if s.src[s.i]&0xC0 != 0x80 {
		// Count columns in characters, not in UTF-8 continuation bytes.
		s.col++
	}
	s.i++
	// A continuation byte does not start a column of its own.
	for !s.eof() && s.src[s.i]&0xC0 == 0x80 {
		s.i++
	}
}

func (s *scanner) pos() position { return position{s.line, s.col} }

func (s *scanner) note(p keyPath, at position) {
	if _, ok := s.loc.exact[p.exact]; !ok {
		s.loc.exact[p.exact] = at
	}
	if _, ok := s.loc.bare[p.bare]; !ok {
		s.loc.bare[p.bare] = at
	}
}

// skip passes spaces and tabs, and newlines and comments when lines is set.
func (s *scanner) skip(lines bool) {
	for !s.eof() {
		switch c := s.peek(); {
		case c == ' ' || c == '\t' || c == '\r':
			s.advance()
		case c == '#':
			for !s.eof() && s.peek() != '\n' {
				s.advance()
			}
		case c == '\n' && lines:
			s.advance()
		default:
			return
		}
	}
}

func (s *scanner) document() {
	var table keyPath
	for {
		s.skip(true)
		if s.eof() {
			return
		}
		start := s.i
		at := s.pos()
		if s.peek() == '[' {
			s.advance()
			array := s.peek() == '['
			if array {
				s.advance()
			}
			parts := s.key()
			if parts == nil {
				return
			}
			table = s.resolve(parts, array)
			s.note(table, at)
			for !s.eof() && s.peek() != '\n' && s.peek() != '#' {
				s.advance()
			}
		} else {
			s.keyValue(table)
		}
		if s.i == start {
			return
		}
	}
}

// resolve turns a header's dotted key into a path, putting in the index of
// the current element of every array of tables it passes through.
func (s *scanner) resolve(parts []string, array bool) keyPath {
	var p keyPath
	for n, k := range parts {
		p = p.key(k)
		if n == len(parts)-1 && array {
			i := 0
			if last, ok := s.arrays[p.exact]; ok {
				i = last + 1
			}
			s.arrays[p.exact] = i
			return p.index(i)
		}
		if last, ok := s.arrays[p.exact]; ok {
			p = p.index(last)
		}
	}
	return p
}

// key reads a dotted key, bare or quoted; nil when there is none.
func (s *scanner) key() []string {
	var parts []string
	for {
		s.skip(false)
		var k string
		switch c := s.peek(); {
		case c == '"' || c == '\'':
			start := s.i
			s.str()
			k = s.src[start:s.i]
			if u, err := strconv.Unquote(k); err == nil && c == '"' {
				k = u
			} else if len(k) >= 2 {
				k = k[1 : len(k)-1]
			}
		case isBare(c):
			start := s.i
			for !s.eof() && isBare(s.peek()) {
				s.advance()
			}
			k = s.src[start:s.i]
		default:
			return nil
		}
		parts = append(parts, k)
		s.skip(false)
		if s.peek() != '.' {
			return parts
		}
		s.advance()
	}
}

func isBare(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
}

// keyValue reads "key = value" inside table.
func (s *scanner) keyValue(table keyPath) {
	at := s.pos()
	parts := s.key()
	if parts == nil {
		return
	}
	p := table
	for _, k := range parts {
		p = p.key(k)
	}
	s.note(p, at)
	s.skip(false)
	if s.peek() != '=' {
		return
	}
	s.advance()
	s.skip(false)
	s.value(p)
}

func (s *scanner) value(p keyPath) {
	switch s.peek() {
	case '{':
		s.advance()
		for {
			s.skip(true)
			if s.eof() {
				return
			}
			if s.peek() == '}' {
				s.advance()
				return
			}
			start := s.i
			s.keyValue(p)
			s.skip(true)
			if s.peek() == ',' {
				s.advance()
			}
			if s.i == start {
				return
			}
		}
	case '[':
		s.advance()
		for n := 0; ; n++ {
			s.skip(true)
			if s.eof() {
				return
			}
			if s.peek() == ']' {
				s.advance()
				return
			}
			start := s.i
			e := p.index(n)
			s.note(e, s.pos())
			s.value(e)
			s.skip(true)
			if s.peek() == ',' {
				s.advance()
			}
			if s.i == start {
				return
			}
		}
	case '"', '\'':
		s.str()
	default:
		for !s.eof() {
			switch s.peek() {
			case ',', ']', '}', '\n', '#':
				return
			}
			s.advance()
		}
	}
}

// str passes a basic or literal string, single- or multi-line.
func (s *scanner) str() {
	q := s.peek()
	if strings.HasPrefix(s.src[s.i:], strings.Repeat(string(q), 3)) {
		for range 3 {
			s.advance()
		}
		end := strings.Repeat(string(q), 3)
		for !s.eof() {
			if q == '"' && s.peek() == '\\' {
				s.advance()
				s.advance()
				continue
			}
			if strings.HasPrefix(s.src[s.i:], end) {
				for range 3 {
					s.advance()
				}
				// Up to two more quotes may belong to the content.
				for range 2 {
					if s.peek() == q {
						s.advance()
					}
				}
				return
			}
			s.advance()
		}
		return
	}
	s.advance()
	for !s.eof() {
		c := s.peek()
		if q == '"' && c == '\\' {
			s.advance()
			s.advance()
			continue
		}
		s.advance()
		if c == q || c == '\n' {
			return
		}
	}
}
