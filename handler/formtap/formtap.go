// Package formtap captures small form fields of an HTTP request body while the body streams on
// to the upstream untouched. It never calls ParseForm or ParseMultipartForm on the live request:
// it wraps r.Body in a reader that returns exactly the original bytes and scans them
// incrementally as the upstream (reverse_proxy) reads them, in O(1) memory regardless of body
// size. Large file parts are scanned for the next boundary and never held.
//
// The scanners follow the rules of Go's own parsers (url.ParseQuery and mime/multipart), so the
// values found are the values a Go upstream would see. Wrap and Scanner let another package tap
// another body format with the same machinery (package jsontap does so for JSON bodies).
package formtap

import (
	"io"
	"maps"
	"mime"
	"net/http"
	"slices"
	"sync"
)

// Tap captures small form fields of a request body while the body streams on to the upstream
// untouched.
//
// The methods of a nil *Tap are safe to call: Fields returns nil, Finish does nothing.
type Tap struct {
	names    map[string]struct{}
	maxValue int
	pick     pick

	mu        sync.Mutex
	sc        Scanner // nil once finished
	remaining int64   // body bytes still expected when the length is known, else -1
	finished  bool
	complete  bool
	fields    map[string][]string
	truncated map[string]int // name → length of its over-long value as it appeared in the body
	done      chan struct{}
}

// pick is which values of a name a Tap keeps.
type pick int

const (
	pickAll   pick = iota // every value, in body order (Attach, Wrap)
	pickFirst             // the first value, over-long or not; stop once every name has one (AttachFirst)
	pickLast              // the last value, over-long or not (WrapLast)
)

// Scanner is an incremental parser of one body format, fed by a Tap with the body's bytes in
// order while the tap's lock is held. It reports the values it finds with Tap.Add and
// Tap.MarkTruncated and asks Tap.Wanted which names to capture. The form scanners of this
// package are Scanners; package jsontap adds one for JSON bodies through Wrap.
type Scanner interface {
	// Write scans the next bytes of the body. It returns true once no further bytes need to be
	// seen: the body is over, or found malformed.
	Write(p []byte) (over bool)
	// End tells the scanner the body ended, or that scanning stopped because Write returned
	// true, and reports whether the body was complete and well formed.
	End() (complete bool)
	// Release returns pooled resources; the scanner is not used again.
	Release()
}

// Attach replaces r.Body with a reader that yields exactly the original bytes and, as they are
// read, extracts the values of the named fields (e.g. "callback_url") from
// application/x-www-form-urlencoded or multipart/form-data bodies. Names are exact: "to" and
// "to[]" are different fields. Values longer than maxValue bytes are ignored and recorded as
// truncated. For other content types Attach returns nil and leaves the body untouched.
//
// r.ContentLength, the original Close and bodies of unknown length are preserved; a nil body or
// http.NoBody is left in place and yields a finished tap without fields. Attach does not look at
// the method: the caller decides which requests carry a form.
func Attach(r *http.Request, names []string, maxValue int) *Tap {
	return attach(r, names, maxValue, pickAll)
}

// AttachFirst is Attach for fields that take one value, such as a send's callback_url: it stops
// scanning as soon as every named field has a value, so Fields holds the first value of each (the
// one r.FormValue returns), and a body whose small fields come before a large file part is not
// scanned past them. Complete then reports false: the rest of the form was not seen. The body
// still streams on unchanged.
//
// A first value longer than maxValue counts as that field's value too: Fields then has none for
// it (a later value is not taken instead, since r.FormValue would return the long one) and
// Truncated reports it.
func AttachFirst(r *http.Request, names []string, maxValue int) *Tap {
	return attach(r, names, maxValue, pickFirst)
}

func attach(r *http.Request, names []string, maxValue int, keep pick) *Tap {
	if r == nil {
		return nil
	}
	mediaType, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch {
	case mediaType == "application/x-www-form-urlencoded":
		// Like net/http's parsePostForm, accept it even if a parameter was malformed.
		maxName := 0
		for _, n := range names {
			maxName = max(maxName, len(n))
		}
		return wrap(r, names, maxValue, keep, func(t *Tap) Scanner { return newURLScanner(t, maxName) })
	case mediaType == "multipart/form-data" && err == nil:
		b, ok := params["boundary"]
		if !ok || b == "" || len(b) > maxBoundary {
			t := newTap(names, maxValue, keep)
			t.finish(false) // Go's multipart reader cannot parse it either
			return t
		}
		return wrap(r, names, maxValue, keep, func(t *Tap) Scanner { return newMultipartScanner(t, b) })
	default:
		return nil
	}
}

// Wrap is the machinery of Attach for other body formats: it replaces r.Body with a reader
// that yields exactly the original bytes and feeds them, as they are read, to the Scanner that
// newScanner makes for the tap. Names are what the scanner captures (Tap.Wanted). A nil body
// or http.NoBody stays in place and yields a finished tap, complete when there is nothing to
// find or the scanner's End accepts an empty body. r.ContentLength, the original Close and
// bodies of unknown length are preserved. maxValue bounds a captured value as for Attach.
func Wrap(r *http.Request, names []string, maxValue int, newScanner func(*Tap) Scanner) *Tap {
	if r == nil {
		return nil
	}
	return wrap(r, names, maxValue, pickAll, newScanner)
}

// WrapLast is Wrap for fields that take one value in a format whose decoders keep the last of
// repeated keys (encoding/json, Ruby's JSON): Fields holds at most one value per name, the last
// one found, and a last value longer than maxValue leaves the name without a value (Truncated
// reports it) even when an earlier value was short enough. The whole body is scanned.
func WrapLast(r *http.Request, names []string, maxValue int, newScanner func(*Tap) Scanner) *Tap {
	if r == nil {
		return nil
	}
	return wrap(r, names, maxValue, pickLast, newScanner)
}

func newTap(names []string, maxValue int, keep pick) *Tap {
	t := &Tap{
		names:    make(map[string]struct{}, len(names)),
		maxValue: max(0, maxValue),
		pick:     keep,
		done:     make(chan struct{}),
	}
	for _, n := range names {
		t.names[n] = struct{}{}
	}
	return t
}

func wrap(r *http.Request, names []string, maxValue int, keep pick, newScanner func(*Tap) Scanner) *Tap {
	t := newTap(names, maxValue, keep)
	if len(t.names) == 0 {
		t.finish(true) // nothing to find
		return t
	}
	sc := newScanner(t)
	if r.Body == nil || r.Body == http.NoBody {
		t.mu.Lock()
		complete := sc.End()
		t.mu.Unlock()
		sc.Release()
		t.finish(complete)
		return t
	}
	t.sc = sc
	t.remaining = -1
	if r.ContentLength > 0 {
		t.remaining = r.ContentLength
	}
	r.Body = &body{rc: r.Body, t: t}
	return t
}

// Fields waits until the body was read to EOF or closed (or Finish was called, or the form ended
// early or was found malformed) and returns the captured values: name → values in body order.
// Only requested names that had at least one value within maxValue appear. The map is a copy.
func (t *Tap) Fields() map[string][]string {
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
// body. Fields then returns what was seen so far (a value whose end was not seen is dropped).
// Bytes read after Finish still pass through unchanged. Finish is idempotent.
func (t *Tap) Finish() {
	if t == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.finishLocked(false)
}

// Complete waits like Fields and reports whether the tap saw the whole form (to its end, well
// formed), so that Fields is authoritative: a missing name was really absent.
func (t *Tap) Complete() bool {
	if t == nil {
		return false
	}
	<-t.done
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.complete
}

// Truncated waits like Fields and reports whether the named field had a value longer than
// maxValue (which Fields leaves out). For a tap that keeps one value per name (AttachFirst,
// WrapLast) it reports whether the value that counts, the first or the last, was too long.
func (t *Tap) Truncated(name string) bool {
	return t.TruncatedLength(name) > 0
}

// TruncatedLength is Truncated with the length of the over-long value in bytes, as it appeared
// in the body (before unescaping or decoding, so at least maxValue+1), or 0 when Truncated is
// false. With several over-long values, it is the longest. Log it instead of the value.
func (t *Tap) TruncatedLength(name string) int {
	if t == nil {
		return 0
	}
	<-t.done
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.truncated[name]
}

// TruncatedNames waits like Fields and returns the names of fields that had a value longer than
// maxValue, sorted.
func (t *Tap) TruncatedNames() []string {
	if t == nil {
		return nil
	}
	<-t.done
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Sorted(maps.Keys(t.truncated))
}

// Wanted reports whether name is one of the requested names. For scanners.
func (t *Tap) Wanted(name string) bool {
	_, ok := t.names[name]
	return ok
}

// Add records a value found under name, or marks name truncated when the value is longer than
// maxValue. For scanners, which the tap calls with its lock held.
func (t *Tap) Add(name, value string) {
	if len(value) > t.maxValue {
		t.MarkTruncated(name, len(value))
		return
	}
	if !t.admit(name) {
		return
	}
	if t.fields == nil {
		t.fields = make(map[string][]string, 1)
	}
	t.fields[name] = append(t.fields[name], value)
}

// MarkTruncated records that name had a value too long to keep, n bytes long as it appeared in
// the body (a scanner that stops buffering a value early counts the bytes it skipped). For
// scanners, which the tap calls with its lock held.
func (t *Tap) MarkTruncated(name string, n int) {
	n = max(n, t.maxValue+1)
	if !t.admit(name) {
		return
	}
	if t.truncated == nil {
		t.truncated = make(map[string]int, 1)
	}
	t.truncated[name] = max(t.truncated[name], n)
}

// admit reports whether a new value of name (short or over-long) counts: with pickFirst only
// while name has none; with pickLast always, after forgetting the one it had.
func (t *Tap) admit(name string) bool {
	if t.pick == pickLast {
		delete(t.fields, name)
		delete(t.truncated, name)
		return true
	}
	return t.pick != pickFirst || !t.settled(name)
}

// settled reports whether name has its value, short or over-long (for pickFirst).
func (t *Tap) settled(name string) bool {
	_, short := t.fields[name]
	_, long := t.truncated[name]
	return short || long
}

// feed scans bytes the upstream just read; err is the error the body returned with them.
func (t *Tap) feed(p []byte, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.finished {
		return
	}
	if t.remaining >= 0 {
		if int64(len(p)) > t.remaining {
			p = p[:t.remaining] // never scan beyond the declared length
		}
		t.remaining -= int64(len(p))
		if t.remaining == 0 && err == nil {
			// A consumer may stop after exactly ContentLength bytes without asking for io.EOF.
			err = io.EOF
		}
	}
	if len(p) > 0 && t.sc.Write(p) {
		t.finishLocked(t.sc.End())
		return
	}
	if t.pick == pickFirst && len(t.fields)+len(t.truncated) == len(t.names) {
		t.finishLocked(false) // every name has its first value: the rest need not be scanned
		return
	}
	if err != nil {
		complete := false
		if err == io.EOF {
			complete = t.sc.End()
		}
		t.finishLocked(complete)
	}
}

func (t *Tap) finish(complete bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.finishLocked(complete)
}

func (t *Tap) finishLocked(complete bool) {
	if t.finished {
		return
	}
	t.finished = true
	t.complete = complete
	if t.sc != nil {
		t.sc.Release()
		t.sc = nil
	}
	close(t.done)
}

// body is the replacement request body: it returns the original bytes and feeds them to the tap.
type body struct {
	rc io.ReadCloser
	t  *Tap
}

// Read reads from the original body and scans what it returned.
func (b *body) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if n < 0 || n > len(p) { // a broken reader; pass it through untouched
		b.t.Finish()
		return n, err
	}
	b.t.feed(p[:n], err)
	return n, err
}

// Close closes the original body and stops the tap.
func (b *body) Close() error {
	err := b.rc.Close()
	b.t.Finish()
	return err
}
