// Package jsontap reads chosen fields of a request body as it streams to the upstream, without
// buffering it: JSON bodies through a streaming scanner (JSONTap), form bodies through package
// formtap. AttachRequest picks the tap for the request's Content-Type; the handler uses it to
// find the callback URL of send, resend and phone-number requests.
package jsontap

import (
	"encoding/json"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/faxhook/caddy-faxhook/handler/formtap"
)

// RequestTap is what AttachRequest returns: a *formtap.Tap for form bodies, a *JSONTap for JSON
// bodies.
type RequestTap interface {
	// Fields waits until the body was read (or the tap finished) and returns the captured
	// values, name → values in body order.
	Fields() map[string][]string
	// Finish stops the tap without waiting for the body.
	Finish()
	// TruncatedLength waits like Fields and returns the length in bytes of the named field's
	// value that counts when it was too long to capture (Fields then has no value for it), else 0.
	TruncatedLength(name string) int
}

// Interface guards.
var (
	_ RequestTap      = (*formtap.Tap)(nil)
	_ formtap.Scanner = (*jsonScanner)(nil)
)

// AttachRequest taps the named fields of a send or resend request body, whatever its type, and
// keeps for each name the one value its upstream would honour: form bodies through
// formtap.AttachFirst (names are form field names; the first value of each counts, as for
// r.FormValue, and the scan stops once every name has one), JSON bodies like AttachJSON (names
// are dotted paths) but keeping the last value of a repeated key, as encoding/json and Ruby's
// JSON do. A value that counts but is longer than maxValue leaves its name without a value
// (TruncatedLength says so); another value is not taken instead. It returns nil, leaving the
// body untouched, for other content types.
func AttachRequest(r *http.Request, names []string, maxValue int) RequestTap {
	if t := formtap.AttachFirst(r, names, maxValue); t != nil {
		return t
	}
	if t := attachJSON(r, names, maxValue, true); t != nil {
		return t
	}
	return nil
}

// maxJSONDepth is the nesting depth beyond which the JSON tap gives up (encoding/json's limit).
const maxJSONDepth = 10000

// JSONTap captures scalar values at dotted paths ("notify_url", "options.callback.url",
// "hooks.0") of a JSON request body while the body streams on to the upstream untouched, in
// memory bounded by the longest wanted path and maxValue, whatever the size of the body (a
// 20 MB base64 document is scanned, never held). Strings are captured decoded; numbers and
// booleans as their JSON text; nulls, objects and arrays not at all. A key repeated in one
// object yields several values (AttachJSON) or its last one (AttachRequest).
//
// It is a formtap.Tap fed by a JSON scanner, which checks the structure of the body (strings,
// brackets, colons, commas) and nothing else. The methods of a nil *JSONTap are safe to call.
type JSONTap = formtap.Tap

// AttachJSON replaces r.Body with a reader that yields exactly the original bytes and, as they
// are read, captures the values at the given dotted paths of an application/json (or
// +json) body, every value of a repeated key in body order. Values longer than maxValue bytes
// are left out and recorded as truncated. For other content types AttachJSON returns nil and
// leaves the body untouched.
func AttachJSON(r *http.Request, paths []string, maxValue int) *JSONTap {
	return attachJSON(r, paths, maxValue, false)
}

// attachJSON is AttachJSON; with last, the tap keeps only the last value of each path.
func attachJSON(r *http.Request, paths []string, maxValue int, last bool) *JSONTap {
	if r == nil {
		return nil
	}
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" && !strings.HasSuffix(mt, "+json") {
		return nil
	}
	w := &jsonWanted{paths: map[string]struct{}{}, maxValue: max(0, maxValue)}
	var names []string
	for _, p := range paths {
		if p == "" {
			continue
		}
		names = append(names, p)
		w.paths[p] = struct{}{}
		segs := strings.Split(p, ".")
		w.maxDepth = max(w.maxDepth, len(segs))
		for _, s := range segs {
			w.maxKey = max(w.maxKey, len(s))
		}
	}
	newScanner := func(t *formtap.Tap) formtap.Scanner { return &jsonScanner{t: t, w: w} }
	if last {
		return formtap.WrapLast(r, names, maxValue, newScanner)
	}
	return formtap.Wrap(r, names, maxValue, newScanner)
}

// jsonWanted is what the JSON scanner looks for and the bounds that follow from it.
type jsonWanted struct {
	paths    map[string]struct{}
	maxKey   int // longest wanted segment
	maxDepth int // most segments of a wanted path
	maxValue int
}

// Scanner states.
const (
	stValue    = iota // a value is expected
	stObjFirst        // after '{': a key or '}'
	stObjKey          // after ',' in an object: a key
	stArrFirst        // after '[': a value or ']'
	stColon           // after a key
	stAfter           // after a value: ',', a closing bracket, or (top level) the end
	stString          // inside a string (key or value)
	stLiteral         // inside a number, true, false or null
	stEnd             // after the top-level value: only white space
)

// frame is one open object or array.
type frame struct {
	obj   bool
	key   string // current key of an object
	keyOK bool   // key was short enough to be kept
	index int    // current index of an array
}

// jsonScanner is an incremental JSON structure scanner, a formtap.Scanner; it reports wanted
// values to its tap.
type jsonScanner struct {
	t     *formtap.Tap
	w     *jsonWanted
	bad   bool // the body was found malformed
	state int
	stack []frame

	isKey   bool   // the current string is a key
	esc     bool   // the previous string byte was a backslash
	keep    bool   // the current string or literal is being kept
	over    bool   // the kept bytes exceeded their bound
	buf     []byte // kept bytes of the current string (raw, between the quotes) or literal
	n       int    // raw length of the current kept string or literal, counted on once over
	capPath string // path of the value being captured, "" if none
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func isLiteralByte(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '-' || c == '+' || c == '.'
}

// Write implements formtap.Scanner: it returns true when the body is malformed and scanning
// should stop.
func (s *jsonScanner) Write(p []byte) bool {
	s.bad = s.write(p)
	return s.bad
}

// End implements formtap.Scanner: the body was complete if it held one well-formed value.
func (s *jsonScanner) End() bool {
	if s.bad {
		return false
	}
	return s.end()
}

// Release implements formtap.Scanner.
func (s *jsonScanner) Release() {}

// write scans p; it returns true when the body is malformed and scanning should stop.
func (s *jsonScanner) write(p []byte) (bad bool) {
	for i := 0; i < len(p); {
		c := p[i]
		switch s.state {
		case stString:
			if s.esc {
				s.esc = false
				s.keepBytes(p[i : i+1])
				i++
				continue
			}
			j := i
			for j < len(p) && p[j] != '"' && p[j] != '\\' {
				j++
			}
			s.keepBytes(p[i:j])
			if j == len(p) {
				return false
			}
			i = j + 1
			if p[j] == '\\' {
				s.esc = true
				s.keepBytes(p[j : j+1])
				continue
			}
			s.endString()
			continue
		case stLiteral:
			if isLiteralByte(c) {
				s.keepBytes(p[i : i+1])
				i++
				continue
			}
			s.endLiteral()
			continue // reprocess c in stAfter
		}
		i++
		if isSpace(c) {
			continue
		}
		switch s.state {
		case stValue:
			if !s.startValue(c) {
				return true
			}
		case stObjFirst, stObjKey:
			switch {
			case c == '"':
				s.startString(true)
			case c == '}' && s.state == stObjFirst:
				s.pop()
			default:
				return true
			}
		case stArrFirst:
			if c == ']' {
				s.pop()
			} else if !s.startValue(c) {
				return true
			}
		case stColon:
			if c != ':' {
				return true
			}
			s.state = stValue
		case stAfter:
			if len(s.stack) == 0 {
				return true // unreachable: the top-level value ends in stEnd
			}
			top := &s.stack[len(s.stack)-1]
			switch {
			case c == ',' && top.obj:
				s.state = stObjKey
			case c == ',':
				top.index++
				s.state = stValue
			case c == '}' && top.obj, c == ']' && !top.obj:
				s.pop()
			default:
				return true
			}
		case stEnd:
			return true
		}
	}
	return false
}

// end reports whether the body ended after a complete top-level value.
func (s *jsonScanner) end() bool {
	if s.state == stLiteral && len(s.stack) == 0 {
		s.endLiteral()
	}
	return s.state == stEnd
}

// afterValue moves on once a value ended.
func (s *jsonScanner) afterValue() {
	if len(s.stack) == 0 {
		s.state = stEnd
	} else {
		s.state = stAfter
	}
}

func (s *jsonScanner) pop() {
	s.stack = s.stack[:len(s.stack)-1]
	s.afterValue()
}

// startValue begins the value whose first byte is c; false if c cannot begin one.
func (s *jsonScanner) startValue(c byte) bool {
	switch {
	case c == '{' || c == '[':
		if len(s.stack) >= maxJSONDepth {
			return false
		}
		s.stack = append(s.stack, frame{obj: c == '{'})
		if c == '{' {
			s.state = stObjFirst
		} else {
			s.state = stArrFirst
		}
		return true
	case c == '"':
		s.capPath = s.valuePath()
		s.startString(false)
		return true
	case c == '-' || c >= '0' && c <= '9' || c == 't' || c == 'f' || c == 'n':
		s.capPath = s.valuePath()
		s.keep, s.over, s.buf, s.n = s.capPath != "", false, s.buf[:0], 0
		s.keepBytes([]byte{c})
		s.state = stLiteral
		return true
	}
	return false
}

// valuePath returns the path of the value about to start if it is wanted, else "".
func (s *jsonScanner) valuePath() string {
	n := len(s.stack)
	if n == 0 || n > s.w.maxDepth {
		return ""
	}
	var b strings.Builder
	for i := range s.stack {
		f := &s.stack[i]
		if i > 0 {
			b.WriteByte('.')
		}
		if f.obj {
			if !f.keyOK {
				return ""
			}
			b.WriteString(f.key)
		} else {
			b.WriteString(strconv.Itoa(f.index))
		}
	}
	p := b.String()
	if _, ok := s.w.paths[p]; !ok {
		return ""
	}
	return p
}

func (s *jsonScanner) startString(isKey bool) {
	s.state, s.isKey, s.esc, s.over, s.buf, s.n = stString, isKey, false, false, s.buf[:0], 0
	if isKey {
		// Keys are kept when an object at a wanted depth may need them.
		s.keep = len(s.stack) <= s.w.maxDepth
	} else {
		s.keep = s.capPath != ""
	}
}

// bound is how many raw bytes of the current string or literal may be kept.
func (s *jsonScanner) bound() int {
	if s.isKey && s.state == stString {
		return 6*s.w.maxKey + 2
	}
	return 6*s.w.maxValue + 2
}

func (s *jsonScanner) keepBytes(b []byte) {
	if !s.keep {
		return
	}
	s.n += len(b)
	if s.over {
		return
	}
	if len(s.buf)+len(b) > s.bound() {
		s.over = true
		return
	}
	s.buf = append(s.buf, b...)
}

// decodeString decodes the raw bytes of a string kept between its quotes.
func decodeString(raw []byte) (string, bool) {
	if !slices.Contains(raw, '\\') && utf8.Valid(raw) {
		return string(raw), true
	}
	var v string
	q := make([]byte, 0, len(raw)+2)
	q = append(append(append(q, '"'), raw...), '"')
	if json.Unmarshal(q, &v) != nil {
		return "", false
	}
	return v, true
}

func (s *jsonScanner) endString() {
	if s.isKey {
		top := &s.stack[len(s.stack)-1]
		top.key, top.keyOK = "", false
		if s.keep && !s.over {
			if k, ok := decodeString(s.buf); ok && len(k) <= s.w.maxKey {
				top.key, top.keyOK = k, true
			}
		}
		s.state = stColon
		return
	}
	if s.capPath != "" {
		if s.over {
			s.t.MarkTruncated(s.capPath, s.n)
		} else if v, ok := decodeString(s.buf); ok {
			s.t.Add(s.capPath, v)
		}
	}
	s.capPath = ""
	s.afterValue()
}

func (s *jsonScanner) endLiteral() {
	if s.capPath != "" {
		switch lit := string(s.buf); {
		case s.over:
			s.t.MarkTruncated(s.capPath, s.n)
		case lit == "null" || !json.Valid(s.buf):
		default:
			s.t.Add(s.capPath, lit)
		}
	}
	s.capPath = ""
	s.afterValue()
}
