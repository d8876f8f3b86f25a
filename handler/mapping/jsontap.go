package mapping

import (
	"encoding/json"
	"io"
	"maps"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
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
}

// Interface guards.
var (
	_ RequestTap = (*formtap.Tap)(nil)
	_ RequestTap = (*JSONTap)(nil)
)

// AttachRequest taps the named fields of a send or resend request body, whatever its type:
// form bodies through formtap.AttachFirst (names are form field names; the first value of each
// counts, as for r.FormValue, and the scan stops once every name has one), JSON bodies through
// AttachJSON (names are dotted paths). It returns nil, leaving the body untouched, for other
// content types.
func AttachRequest(r *http.Request, names []string, maxValue int) RequestTap {
	if t := formtap.AttachFirst(r, names, maxValue); t != nil {
		return t
	}
	if t := AttachJSON(r, names, maxValue); t != nil {
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
// booleans as their JSON text; nulls, objects and arrays not at all.
//
// The scanner checks the structure of the body (strings, brackets, colons, commas) and nothing
// else. The methods of a nil *JSONTap are safe to call.
type JSONTap struct {
	wanted   map[string]struct{}
	maxKey   int // longest wanted segment
	maxDepth int // most segments of a wanted path
	maxValue int

	mu        sync.Mutex
	sc        *jsonScanner // nil once finished
	remaining int64        // body bytes still expected when the length is known, else -1
	finished  bool
	complete  bool
	fields    map[string][]string
	truncated map[string]bool
	done      chan struct{}
}

// AttachJSON replaces r.Body with a reader that yields exactly the original bytes and, as they
// are read, captures the values at the given dotted paths of an application/json (or
// +json) body. Values longer than maxValue bytes are left out and recorded as truncated. For
// other content types AttachJSON returns nil and leaves the body untouched.
func AttachJSON(r *http.Request, paths []string, maxValue int) *JSONTap {
	if r == nil {
		return nil
	}
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" && !strings.HasSuffix(mt, "+json") {
		return nil
	}
	t := &JSONTap{wanted: map[string]struct{}{}, maxValue: max(0, maxValue), done: make(chan struct{})}
	for _, p := range paths {
		if p == "" {
			continue
		}
		t.wanted[p] = struct{}{}
		segs := strings.Split(p, ".")
		t.maxDepth = max(t.maxDepth, len(segs))
		for _, s := range segs {
			t.maxKey = max(t.maxKey, len(s))
		}
	}
	if len(t.wanted) == 0 || r.Body == nil || r.Body == http.NoBody {
		t.finish(len(t.wanted) == 0)
		return t
	}
	t.sc = &jsonScanner{t: t}
	t.remaining = -1
	if r.ContentLength > 0 {
		t.remaining = r.ContentLength
	}
	r.Body = &jsonBody{rc: r.Body, t: t}
	return t
}

// Fields waits until the body was read to EOF or closed (or Finish was called, or the body was
// found malformed) and returns the captured values: path → values in body order (a key repeated
// in one object yields several). The map is a copy.
func (t *JSONTap) Fields() map[string][]string {
	if t == nil {
		return nil
	}
	<-t.done
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make(map[string][]string, len(t.fields))
	for k, v := range t.fields {
		out[k] = slices.Clone(v)
	}
	return out
}

// Finish stops the tap, for when the upstream never read the whole body; it never blocks on the
// body. Fields then returns what was seen so far. Finish is idempotent.
func (t *JSONTap) Finish() {
	if t == nil {
		return
	}
	t.finish(false)
}

// Complete waits like Fields and reports whether the tap saw the whole body, well formed, so
// that a missing path was really absent.
func (t *JSONTap) Complete() bool {
	if t == nil {
		return false
	}
	<-t.done
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.complete
}

// TruncatedNames waits like Fields and returns the paths that had a value longer than maxValue,
// sorted.
func (t *JSONTap) TruncatedNames() []string {
	if t == nil {
		return nil
	}
	<-t.done
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Sorted(maps.Keys(t.truncated))
}

// add records a value; called with t.mu held.
func (t *JSONTap) add(path, value string) {
	if len(value) > t.maxValue {
		t.markTruncated(path)
		return
	}
	if t.fields == nil {
		t.fields = map[string][]string{}
	}
	t.fields[path] = append(t.fields[path], value)
}

func (t *JSONTap) markTruncated(path string) {
	if t.truncated == nil {
		t.truncated = map[string]bool{}
	}
	t.truncated[path] = true
}

// feed scans bytes the upstream just read; err is what the body returned with them.
func (t *JSONTap) feed(p []byte, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.finished {
		return
	}
	if t.remaining >= 0 {
		if int64(len(p)) > t.remaining {
			p = p[:t.remaining]
		}
		t.remaining -= int64(len(p))
		if t.remaining == 0 && err == nil {
			err = io.EOF
		}
	}
	if len(p) > 0 && t.sc.write(p) {
		t.finishLocked(false)
		return
	}
	if err != nil {
		t.finishLocked(err == io.EOF && t.sc.end())
	}
}

func (t *JSONTap) finish(complete bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.finishLocked(complete)
}

func (t *JSONTap) finishLocked(complete bool) {
	if t.finished {
		return
	}
	t.finished, t.complete, t.sc = true, complete, nil
	close(t.done)
}

// jsonBody is the replacement request body.
type jsonBody struct {
	rc io.ReadCloser
	t  *JSONTap
}

// Read reads from the original body and scans what it returned.
func (b *jsonBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if n < 0 || n > len(p) {
		b.t.Finish()
		return n, err
	}
	b.t.feed(p[:n], err)
	return n, err
}

// Close closes the original body and stops the tap.
func (b *jsonBody) Close() error {
	err := b.rc.Close()
	b.t.Finish()
	return err
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

// jsonScanner is an incremental JSON structure scanner; it calls t.add for wanted values.
type jsonScanner struct {
	t     *JSONTap
	state int
	stack []frame

	isKey   bool   // the current string is a key
	esc     bool   // the previous string byte was a backslash
	keep    bool   // the current string or literal is being kept
	over    bool   // the kept bytes exceeded their bound
	buf     []byte // kept bytes of the current string (raw, between the quotes) or literal
	capPath string // path of the value being captured, "" if none
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func isLiteralByte(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '-' || c == '+' || c == '.'
}

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
		s.keep, s.over, s.buf = s.capPath != "", false, s.buf[:0]
		s.keepBytes([]byte{c})
		s.state = stLiteral
		return true
	}
	return false
}

// valuePath returns the path of the value about to start if it is wanted, else "".
func (s *jsonScanner) valuePath() string {
	n := len(s.stack)
	if n == 0 || n > s.t.maxDepth {
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
	if _, ok := s.t.wanted[p]; !ok {
		return ""
	}
	return p
}

func (s *jsonScanner) startString(isKey bool) {
	s.state, s.isKey, s.esc, s.over, s.buf = stString, isKey, false, false, s.buf[:0]
	if isKey {
		// Keys are kept when an object at a wanted depth may need them.
		s.keep = len(s.stack) <= s.t.maxDepth
	} else {
		s.keep = s.capPath != ""
	}
}

// bound is how many raw bytes of the current string or literal may be kept.
func (s *jsonScanner) bound() int {
	if s.isKey && s.state == stString {
		return 6*s.t.maxKey + 2
	}
	return 6*s.t.maxValue + 2
}

func (s *jsonScanner) keepBytes(b []byte) {
	if !s.keep || s.over {
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
			if k, ok := decodeString(s.buf); ok && len(k) <= s.t.maxKey {
				top.key, top.keyOK = k, true
			}
		}
		s.state = stColon
		return
	}
	if s.capPath != "" {
		if s.over {
			s.t.markTruncated(s.capPath)
		} else if v, ok := decodeString(s.buf); ok {
			s.t.add(s.capPath, v)
		}
	}
	s.capPath = ""
	s.afterValue()
}

func (s *jsonScanner) endLiteral() {
	if s.capPath != "" {
		switch lit := string(s.buf); {
		case s.over:
			s.t.markTruncated(s.capPath)
		case lit == "null" || !json.Valid(s.buf):
		default:
			s.t.add(s.capPath, lit)
		}
	}
	s.capPath = ""
	s.afterValue()
}
