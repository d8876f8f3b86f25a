package pgstore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/faxhook/caddy-faxhook/queue"
)

// A job row keeps in columns what queries select, order or lock by (state, destination, due and
// finish times, chain), and the rest of the job in two binary records: head (everything else
// that is not the payload) and body (the Payload). Each record starts with a version byte; only
// the current layout is read. A binary encoding, not JSON or jsonb, because a job's strings are
// Go strings, which may hold any bytes (a chain holds a NUL), and must come back byte for byte.
const (
	headVersion = 1
	bodyVersion = 1
)

// errCorrupt is wrapped by the errors of the decoders.
var errCorrupt = errors.New("corrupt job record")

// zeroNanos is the column value of the zero time: it sorts before every other time.
const zeroNanos = math.MinInt64

// nanos returns t as a time column: Unix nanoseconds, with the zero time as zeroNanos. Times
// outside what int64 nanoseconds hold (before 1678, after 2262) are clamped to the nearest
// representable instant.
func nanos(t time.Time) int64 {
	switch {
	case t.IsZero():
		return zeroNanos
	case t.Before(minTime):
		return zeroNanos + 1
	case t.After(maxTime):
		return math.MaxInt64
	}
	return t.UnixNano()
}

var (
	minTime = time.Unix(0, zeroNanos+1)
	maxTime = time.Unix(0, math.MaxInt64)
)

// offset returns the zone offset column of t, in seconds east of UTC.
func offset(t time.Time) int32 {
	_, off := t.Zone()
	return int32(off)
}

// fromColumns returns the time of a nanosecond column and its zone offset: UTC for offset 0,
// the local zone when the offset is the local one there and then (as encoding/json gives),
// else a fixed zone.
func fromColumns(ns int64, off int32) time.Time {
	if ns == zeroNanos {
		return time.Time{}
	}
	t := time.Unix(0, ns)
	if off == 0 {
		return t.UTC()
	}
	if _, local := t.Zone(); int32(local) == off {
		return t
	}
	return t.In(time.FixedZone("", int(off)))
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// appendTime appends t as a flag byte (0: the zero time, 1: UTC, 2: with a zone offset), the
// Unix seconds and nanoseconds and, for 2, the offset in seconds.
func appendTime(b []byte, t time.Time) []byte {
	if t.IsZero() {
		return append(b, 0)
	}
	_, off := t.Zone()
	if off == 0 {
		b = append(b, 1)
	} else {
		b = append(b, 2)
	}
	b = binary.AppendVarint(b, t.Unix())
	b = binary.AppendUvarint(b, uint64(t.Nanosecond()))
	if off != 0 {
		b = binary.AppendVarint(b, int64(off))
	}
	return b
}

// encodeHead encodes the fields of j that have no column and are not its body.
func encodeHead(j *queue.Job) []byte {
	n := 48 + len(j.EventID) + len(j.URL) + 16*len(j.ReplayedAt)
	for _, l := range j.Meta {
		n += 4 + len(l.Name) + len(l.Value)
	}
	for _, a := range j.Attempts {
		n += 40 + len(a.Error) + len(a.Body)
	}
	b := make([]byte, 0, n)
	b = append(b, headVersion)
	b = appendString(b, j.EventID)
	b = binary.AppendUvarint(b, uint64(len(j.Meta)))
	for _, l := range j.Meta {
		b = appendString(b, l.Name)
		b = appendString(b, l.Value)
	}
	b = appendString(b, j.URL)
	b = appendTime(b, j.CreatedAt)
	b = binary.AppendUvarint(b, uint64(len(j.Attempts)))
	for _, a := range j.Attempts {
		b = appendTime(b, a.At)
		b = binary.AppendVarint(b, int64(a.Duration))
		b = binary.AppendVarint(b, int64(a.Status))
		b = appendString(b, a.Error)
		b = appendString(b, a.Body)
	}
	b = binary.AppendVarint(b, int64(j.LadderBase))
	b = binary.AppendUvarint(b, uint64(len(j.ReplayedAt)))
	for _, t := range j.ReplayedAt {
		b = appendTime(b, t)
	}
	return b
}

// encodeBody encodes j's Payload.
func encodeBody(j *queue.Job) []byte {
	n := 16 + len(j.Prepare)
	for _, f := range j.Fields {
		n += 10 + len(f.Name) + len(f.Value)
	}
	for _, f := range j.Files {
		n += 20 + len(f.Name) + len(f.Filename) + len(f.ContentType) + len(f.Data)
	}
	if m := j.Mail; m != nil {
		n += 16 + len(m.Subject) + len(m.Text) + len(m.HTML)
	}
	b := make([]byte, 0, n)
	b = append(b, bodyVersion)
	b = binary.AppendUvarint(b, uint64(len(j.Fields)))
	for _, f := range j.Fields {
		b = appendString(b, f.Name)
		b = appendString(b, f.Value)
	}
	b = binary.AppendUvarint(b, uint64(len(j.Files)))
	for _, f := range j.Files {
		b = appendString(b, f.Name)
		b = appendString(b, f.Filename)
		b = appendString(b, f.ContentType)
		b = binary.AppendUvarint(b, uint64(len(f.Data)))
		b = append(b, f.Data...)
	}
	if m := j.Mail; m == nil {
		b = append(b, 0)
	} else {
		b = append(b, 1)
		b = appendString(b, m.Subject)
		b = appendString(b, m.Text)
		b = appendString(b, m.HTML)
	}
	return appendString(b, j.Prepare)
}

// reader decodes the records; the first error sticks and later reads return zero values.
type reader struct {
	b   []byte
	off int
	err error
}

func (r *reader) fail() {
	if r.err == nil {
		r.err = fmt.Errorf("%w: truncated or malformed at byte %d", errCorrupt, r.off)
	}
	r.off = len(r.b)
}

func (r *reader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b[r.off:])
	if n <= 0 {
		r.fail()
		return 0
	}
	r.off += n
	return v
}

func (r *reader) varint() int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b[r.off:])
	if n <= 0 {
		r.fail()
		return 0
	}
	r.off += n
	return v
}

// count reads a count of items that take at least one byte each.
func (r *reader) count() int {
	n := r.uvarint()
	if n > uint64(len(r.b)-r.off) {
		r.fail()
		return 0
	}
	return int(n)
}

func (r *reader) span() []byte {
	n := r.uvarint()
	if r.err != nil || n > uint64(len(r.b)-r.off) {
		r.fail()
		return nil
	}
	s := r.b[r.off : r.off+int(n) : r.off+int(n)]
	r.off += int(n)
	return s
}

func (r *reader) string() string { return string(r.span()) }

func (r *reader) bytes() []byte {
	if s := r.span(); len(s) > 0 {
		return s
	}
	return nil
}

func (r *reader) byte() byte {
	if r.err != nil || r.off >= len(r.b) {
		r.fail()
		return 0
	}
	c := r.b[r.off]
	r.off++
	return c
}

func (r *reader) time() time.Time {
	flag := r.byte()
	if flag == 0 || r.err != nil {
		return time.Time{}
	}
	sec := r.varint()
	nsec := r.uvarint()
	if nsec >= 1e9 {
		r.fail()
		return time.Time{}
	}
	t := time.Unix(sec, int64(nsec))
	switch flag {
	case 1:
		return t.UTC()
	case 2:
		off := r.varint()
		if off < math.MinInt32 || off > math.MaxInt32 {
			r.fail()
			return time.Time{}
		}
		if _, local := t.Zone(); int64(local) == off {
			return t
		}
		return t.In(time.FixedZone("", int(off)))
	}
	r.fail()
	return time.Time{}
}

func (r *reader) end() error {
	if r.err == nil && r.off != len(r.b) {
		r.fail()
	}
	return r.err
}

// decodeHead decodes a head record into j.
func decodeHead(v []byte, j *queue.Job) error {
	if len(v) == 0 || v[0] != headVersion {
		return fmt.Errorf("%w: unknown head record version", errCorrupt)
	}
	r := &reader{b: v, off: 1}
	j.EventID = r.string()
	j.Meta = nil
	if n := r.count(); n > 0 {
		j.Meta = make(queue.Labels, n)
		for i := range j.Meta {
			j.Meta[i] = queue.Label{Name: r.string(), Value: r.string()}
		}
	}
	j.URL = r.string()
	j.CreatedAt = r.time()
	j.Attempts = nil
	if n := r.count(); n > 0 {
		j.Attempts = make([]queue.Attempt, n)
		for i := range j.Attempts {
			a := &j.Attempts[i]
			a.At = r.time()
			a.Duration = time.Duration(r.varint())
			a.Status = int(r.varint())
			a.Error = r.string()
			a.Body = r.string()
		}
	}
	j.LadderBase = int(r.varint())
	j.ReplayedAt = nil
	if n := r.count(); n > 0 {
		j.ReplayedAt = make([]time.Time, n)
		for i := range j.ReplayedAt {
			j.ReplayedAt[i] = r.time()
		}
	}
	return r.end()
}

// decodeBody decodes a body record into j's Payload. File data shares v, which the caller must
// not reuse.
func decodeBody(v []byte, j *queue.Job) error {
	if len(v) == 0 || v[0] != bodyVersion {
		return fmt.Errorf("%w: unknown body record version", errCorrupt)
	}
	r := &reader{b: v, off: 1}
	var p queue.Payload
	if n := r.count(); n > 0 {
		p.Fields = make([]queue.Field, n)
		for i := range p.Fields {
			p.Fields[i] = queue.Field{Name: r.string(), Value: r.string()}
		}
	}
	if n := r.count(); n > 0 {
		p.Files = make([]queue.File, n)
		for i := range p.Files {
			p.Files[i] = queue.File{Name: r.string(), Filename: r.string(), ContentType: r.string(), Data: r.bytes()}
		}
	}
	switch r.byte() {
	case 0:
	case 1:
		p.Mail = &queue.Mail{Subject: r.string(), Text: r.string(), HTML: r.string()}
	default:
		r.fail()
	}
	p.Prepare = r.string()
	if err := r.end(); err != nil {
		return err
	}
	j.Payload = p
	return nil
}
