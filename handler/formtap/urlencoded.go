package formtap

import (
	"bytes"
	"net/url"
)

// urlScanner scans an application/x-www-form-urlencoded body incrementally, with the rules of
// url.ParseQuery: pairs are separated by '&'; a pair containing ';' is rejected; a pair without
// '=' has the empty value; keys and values are unescaped with url.QueryUnescape ('+' is a space,
// invalid %-escapes reject the pair). Only the raw bytes of the current key, and of the current
// value when its key is wanted, are held, each bounded.
type urlScanner struct {
	t         *Tap
	maxKeyRaw int // a raw key longer than this cannot unescape to a wanted name
	maxValRaw int // a raw value longer than this cannot unescape to maxValue bytes or fewer

	key     []byte
	keyOver bool
	inValue bool   // '=' seen in the current pair
	name    string // unescaped key, when wanted (decided at '=')
	want    bool
	val     []byte
	valOver bool
	valLen  int  // raw bytes of the current wanted value, counted on after valOver
	semi    bool // the pair contains ';'
	started bool // the pair has at least one byte (url.ParseQuery skips empty pairs)
	pairs   int  // pairs ended so far ('&' count)
}

// maxPairs mirrors url.ParseQuery's default limit: a body with more pairs yields no values there.
const maxPairs = 10000

func newURLScanner(t *Tap, maxName int) *urlScanner {
	return &urlScanner{
		t:         t,
		maxKeyRaw: 3 * maxName,
		maxValRaw: 3 * t.maxValue,
	}
}

// Write implements Scanner.
func (s *urlScanner) Write(p []byte) bool {
	for len(p) > 0 {
		if !s.inValue {
			i := bytes.IndexAny(p, "=&")
			seg := p
			if i >= 0 {
				seg = p[:i]
			}
			if len(seg) > 0 {
				s.started = true
			}
			s.appendKey(seg)
			if i < 0 {
				return false
			}
			if p[i] == '&' {
				s.endPair()
			} else {
				s.startValue()
			}
			p = p[i+1:]
			continue
		}
		i := bytes.IndexByte(p, '&')
		seg := p
		if i >= 0 {
			seg = p[:i]
		}
		if s.want {
			s.appendValue(seg)
		}
		if i < 0 {
			return false
		}
		s.endPair()
		p = p[i+1:]
	}
	return false
}

func (s *urlScanner) appendKey(b []byte) {
	if s.keyOver || len(b) == 0 {
		return
	}
	if len(s.key)+len(b) > s.maxKeyRaw {
		s.keyOver, s.key = true, s.key[:0]
		return
	}
	s.key = append(s.key, b...)
}

func (s *urlScanner) appendValue(b []byte) {
	if !s.semi && bytes.IndexByte(b, ';') >= 0 {
		s.semi = true
	}
	s.valLen += len(b)
	if s.valOver || len(b) == 0 {
		return
	}
	if len(s.val)+len(b) > s.maxValRaw {
		s.valOver, s.val = true, s.val[:0]
		return
	}
	s.val = append(s.val, b...)
}

// startValue decides at '=' whether the value needs to be kept.
func (s *urlScanner) startValue() {
	s.inValue, s.started = true, true
	if s.keyOver || bytes.IndexByte(s.key, ';') >= 0 {
		return
	}
	name, err := url.QueryUnescape(string(s.key))
	if err != nil || !s.t.Wanted(name) {
		return
	}
	s.name, s.want = name, true
}

// endPair commits the current pair and resets for the next.
func (s *urlScanner) endPair() {
	switch {
	case !s.started:
	case !s.inValue:
		// A pair without '=': the value is empty.
		if !s.keyOver && bytes.IndexByte(s.key, ';') < 0 {
			if name, err := url.QueryUnescape(string(s.key)); err == nil && s.t.Wanted(name) {
				s.t.Add(name, "")
			}
		}
	case s.want && !s.semi:
		if s.valOver {
			s.t.MarkTruncated(s.name, s.valLen)
			break
		}
		if v, err := url.QueryUnescape(string(s.val)); err == nil {
			s.t.Add(s.name, v) // add checks the unescaped length
		}
	}
	s.pairs++
	s.key, s.val, s.valLen = s.key[:0], s.val[:0], 0
	s.keyOver, s.inValue, s.want, s.valOver, s.semi, s.started = false, false, false, false, false, false
	s.name = ""
}

// End implements Scanner: the last pair ends with the body. A body with more pairs than
// url.ParseQuery accepts is reported as incomplete.
func (s *urlScanner) End() bool {
	s.endPair()
	return s.pairs <= maxPairs
}

// Release implements Scanner.
func (s *urlScanner) Release() {}
