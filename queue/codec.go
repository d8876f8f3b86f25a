package queue

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"slices"
	"time"
)

// A job is stored as its head record (everything the dispatcher changes on every attempt, and
// the fields that identify and describe the job, its metadata included) and its body (the
// Payload). A body whose record is at most inlineBodyMax bytes ends the head record, so that a
// job is one key: it is written and read with the head. A larger body (one with files: a PDF)
// is a record of its own, written at Enqueue and rewritten only when a PutJob changes it, so
// that reading or rewriting the head, on every attempt and in every listing, does not copy it.
// Both records are in the compact binary encoding below, each starting with a version byte.
// Only the current layout is read: an older record is reported as corrupt.
const (
	headVersion = 4 // version byte of a head record
	bodyVersion = 2 // version byte of a body record
)

// inlineBodyMax is the largest body record kept in its job's head. A fax_completed webhook's
// body, a fax object of a few recipients, is 1 to 2 KB; up to this size a head read for a
// listing or an attempt's outcome copies a few KB at most.
const inlineBodyMax = 4 << 10

// Where a head record says the body is: the byte after the chain flags.
const (
	bodyApart  = 0 // in a record of its own
	bodyInline = 1 // the body record follows, to the end of the head record
)

// errCorrupt is wrapped by the errors of the decoders.
var errCorrupt = errors.New("corrupt record")

// appendString appends s with its length.
func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// appendTime appends t as a flag byte (0: the zero time, 1: UTC, 2: with a zone offset), the
// Unix seconds and nanoseconds and, for 2, the offset in seconds. The monotonic reading and the
// zone's name are dropped, as JSON did.
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

// headCap is a capacity that holds the head of j, without an inline body, in most cases.
func headCap(j *Job) int {
	n := 64 + len(j.Lease) + len(j.EventID) + len(j.URL) + len(j.Chain) + len(j.State) + 16*len(j.ReplayedAt)
	for _, l := range j.Meta {
		n += 4 + len(l.Name) + len(l.Value)
	}
	for _, a := range j.Attempts {
		n += 40 + len(a.Error) + len(a.Body)
	}
	return n
}

// appendHead appends everything of j but its body (the Payload) and its ID, which is in the
// record's key; the body's placement comes after it.
func appendHead(b []byte, j *Job) []byte {
	b = append(b, headVersion)
	b = appendString(b, j.EventID)
	b = binary.AppendUvarint(b, uint64(len(j.Meta)))
	for _, l := range j.Meta {
		b = appendString(b, l.Name)
		b = appendString(b, l.Value)
	}
	b = appendString(b, j.URL)
	b = appendString(b, j.Chain)
	b = appendString(b, j.State)
	b = appendTime(b, j.FinishedAt)
	b = appendTime(b, j.CreatedAt)
	b = appendTime(b, j.DueAt)
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
	b = appendString(b, j.Lease)
	return append(b, j.chainFlags)
}

// bodyRec is a job's body as stored: apart, in a record of its own, or the body record at the
// end of the head record, held as b or as s (from a record written, or read, by the transaction).
type bodyRec struct {
	apart bool
	b     []byte
	s     string
}

func (r bodyRec) size() int { return len(r.b) + len(r.s) }

// encodeHead encodes the head of j with its body stored as body says.
func encodeHead(j *Job, body bodyRec) []byte {
	b := appendHead(make([]byte, 0, headCap(j)+1+body.size()), j)
	if body.apart {
		return append(b, bodyApart)
	}
	b = append(b, bodyInline)
	b = append(b, body.b...)
	return append(b, body.s...)
}

// encodeJob encodes j's head and body: a body of at most inlineBodyMax bytes in the head (apart
// is nil, body is where it is in head), a larger one as the record apart.
func encodeJob(j *Job) (head []byte, body bodyRec, apart []byte) {
	n := bodyLen(j)
	if n > inlineBodyMax {
		apart = appendBody(make([]byte, 0, n), j)
		return encodeHead(j, bodyRec{apart: true}), bodyRec{apart: true}, apart
	}
	head = appendHead(make([]byte, 0, headCap(j)+1+n), j)
	head = append(head, bodyInline)
	head = appendBody(head, j)
	return head, bodyRec{b: head[len(head)-n:]}, nil
}

// uvarintLen is the length of x as a uvarint.
func uvarintLen(x uint64) int { return (bits.Len64(x|1) + 6) / 7 }

// stringLen is the length of s as appendString appends it.
func stringLen(s string) int { return uvarintLen(uint64(len(s))) + len(s) }

// bodyLen is the length of j's body record.
func bodyLen(j *Job) int {
	n := 1 + uvarintLen(uint64(len(j.Fields))) + uvarintLen(uint64(len(j.Files))) + 1 + stringLen(j.Prepare)
	for _, f := range j.Fields {
		n += stringLen(f.Name) + stringLen(f.Value)
	}
	for _, f := range j.Files {
		n += stringLen(f.Name) + stringLen(f.Filename) + stringLen(f.ContentType) + uvarintLen(uint64(len(f.Data))) + len(f.Data)
	}
	if m := j.Mail; m != nil {
		n += stringLen(m.Subject) + stringLen(m.Text) + stringLen(m.HTML)
	}
	return n
}

// encodeBody encodes the body of j: its Payload.
func encodeBody(j *Job) []byte { return appendBody(make([]byte, 0, bodyLen(j)), j) }

// appendBody appends the body record of j.
func appendBody(b []byte, j *Job) []byte {
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

// reader decodes the binary records; the first error sticks and later reads return zero values.
type reader struct {
	b   []byte
	s   string // b as a string, for strings that share one allocation; "" to copy each
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

// varint reads a signed varint: a zig-zag encoded uvarint, as binary.AppendVarint writes it.
func (r *reader) varint() int64 {
	u := r.uvarint()
	v := int64(u >> 1)
	if u&1 != 0 {
		v = ^v
	}
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

// span reads a length and returns the bounds of that many bytes.
func (r *reader) span() (int, int) {
	n := r.uvarint()
	if r.err != nil || n > uint64(len(r.b)-r.off) {
		r.fail()
		return 0, 0
	}
	start := r.off
	r.off += int(n)
	return start, r.off
}

func (r *reader) string() string {
	start, end := r.span()
	if start == end {
		return ""
	}
	if r.s != "" {
		return r.s[start:end]
	}
	return string(r.b[start:end])
}

// bytes returns a copy: what the decoders return never points into the record, which may be
// memory Badger reuses or unmaps.
func (r *reader) bytes() []byte {
	start, end := r.span()
	if start == end {
		return nil
	}
	return slices.Clone(r.b[start:end])
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
			return t // time.Local, as encoding/json gives
		}
		return t.In(time.FixedZone("", int(off)))
	}
	r.fail()
	return time.Time{}
}

// decodeHead decodes a head record into j (whose ID the caller sets) and returns where the body
// is: an inline body is returned as part of a string that the strings of j share, one
// allocation for the whole record.
func decodeHead(v []byte, j *Job) (bodyRec, error) {
	if len(v) == 0 || v[0] != headVersion {
		return bodyRec{}, fmt.Errorf("%w: unknown head record version", errCorrupt)
	}
	r := &reader{b: v, s: string(v), off: 1}
	j.EventID = r.string()
	j.Meta = nil
	if n := r.count(); n > 0 {
		j.Meta = make(Labels, n)
		for i := range j.Meta {
			j.Meta[i] = Label{Name: r.string(), Value: r.string()}
		}
	}
	j.URL = r.string()
	j.Chain = r.string()
	j.State = r.string()
	j.FinishedAt = r.time()
	j.CreatedAt = r.time()
	j.DueAt = r.time()
	if n := r.count(); n > 0 {
		j.Attempts = make([]Attempt, n)
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
	if n := r.count(); n > 0 {
		j.ReplayedAt = make([]time.Time, n)
		for i := range j.ReplayedAt {
			j.ReplayedAt[i] = r.time()
		}
	}
	j.Lease = r.string()
	j.chainFlags = r.byte()
	var body bodyRec
	switch r.byte() {
	case bodyApart:
		body.apart = true
		if r.err == nil && r.off != len(v) {
			r.fail()
		}
	case bodyInline:
		if r.off == len(v) {
			r.fail() // a body record is never empty
		}
		body.s = r.s[r.off:]
	default:
		r.fail()
	}
	return body, r.err
}

// decodeInline decodes the inline body of head record v, as decodeHead returned it, into j's
// Payload.
func decodeInline(v []byte, body bodyRec, j *Job) error {
	return decodeBody(v[len(v)-len(body.s):], body.s, j)
}

// shareLimit is the size up to which the strings of a body record share one allocation; larger
// ones hold file data, which the strings need not keep alive.
const shareLimit = 8 << 10

// decodeBody decodes a body record into j's Payload; s is v as a string if the caller has one,
// for the strings to share, else "". Nothing decoded points into v: a body from Badger's value
// log is read from a memory-mapped file that Badger unmaps, and a job outlives the transaction
// that read it (the dispatcher sends it afterwards).
func decodeBody(v []byte, s string, j *Job) error {
	if len(v) == 0 || v[0] != bodyVersion {
		return fmt.Errorf("%w: unknown body record version", errCorrupt)
	}
	r := &reader{b: v, s: s, off: 1}
	if s == "" && len(v) <= shareLimit {
		r.s = string(v) // one allocation for every string
	}
	var p Payload
	if n := r.count(); n > 0 {
		p.Fields = make([]Field, n)
		for i := range p.Fields {
			p.Fields[i] = Field{Name: r.string(), Value: r.string()}
		}
	}
	if n := r.count(); n > 0 {
		p.Files = make([]File, n)
		for i := range p.Files {
			p.Files[i] = File{Name: r.string(), Filename: r.string(), ContentType: r.string(), Data: r.bytes()}
		}
	}
	switch r.byte() {
	case 0:
	case 1:
		p.Mail = &Mail{Subject: r.string(), Text: r.string(), HTML: r.string()}
	default:
		r.fail()
	}
	p.Prepare = r.string()
	if r.err == nil && r.off != len(v) {
		r.fail()
	}
	j.Payload = p
	return r.err
}
