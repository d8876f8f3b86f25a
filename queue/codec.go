package queue

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"time"

	"github.com/faxhook/caddy-faxhook/queue/internal/binrec"
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
	b = binrec.AppendString(b, j.EventID)
	b = binary.AppendUvarint(b, uint64(len(j.Meta)))
	for _, l := range j.Meta {
		b = binrec.AppendString(b, l.Name)
		b = binrec.AppendString(b, l.Value)
	}
	b = binrec.AppendString(b, j.URL)
	b = binrec.AppendString(b, j.Chain)
	b = binrec.AppendString(b, j.State)
	b = binrec.AppendTime(b, j.FinishedAt)
	b = binrec.AppendTime(b, j.CreatedAt)
	b = binrec.AppendTime(b, j.DueAt)
	b = binary.AppendUvarint(b, uint64(len(j.Attempts)))
	for _, a := range j.Attempts {
		b = binrec.AppendTime(b, a.At)
		b = binary.AppendVarint(b, int64(a.Duration))
		b = binary.AppendVarint(b, int64(a.Status))
		b = binrec.AppendString(b, a.Error)
		b = binrec.AppendString(b, a.Body)
	}
	b = binary.AppendVarint(b, int64(j.LadderBase))
	b = binary.AppendUvarint(b, uint64(len(j.ReplayedAt)))
	for _, t := range j.ReplayedAt {
		b = binrec.AppendTime(b, t)
	}
	b = binrec.AppendString(b, j.Lease)
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
		b = binrec.AppendString(b, f.Name)
		b = binrec.AppendString(b, f.Value)
	}
	b = binary.AppendUvarint(b, uint64(len(j.Files)))
	for _, f := range j.Files {
		b = binrec.AppendString(b, f.Name)
		b = binrec.AppendString(b, f.Filename)
		b = binrec.AppendString(b, f.ContentType)
		b = binary.AppendUvarint(b, uint64(len(f.Data)))
		b = append(b, f.Data...)
	}
	if m := j.Mail; m == nil {
		b = append(b, 0)
	} else {
		b = append(b, 1)
		b = binrec.AppendString(b, m.Subject)
		b = binrec.AppendString(b, m.Text)
		b = binrec.AppendString(b, m.HTML)
	}
	return binrec.AppendString(b, j.Prepare)
}

// decodeHead decodes a head record into j (whose ID the caller sets) and returns where the body
// is: an inline body is returned as part of a string that the strings of j share, one
// allocation for the whole record.
func decodeHead(v []byte, j *Job) (bodyRec, error) {
	if len(v) == 0 || v[0] != headVersion {
		return bodyRec{}, fmt.Errorf("%w: unknown head record version", errCorrupt)
	}
	r := &binrec.Reader{B: v, S: string(v), Off: 1, Corrupt: errCorrupt}
	j.EventID = r.String()
	j.Meta = nil
	if n := r.Count(); n > 0 {
		j.Meta = make(Labels, n)
		for i := range j.Meta {
			j.Meta[i] = Label{Name: r.String(), Value: r.String()}
		}
	}
	j.URL = r.String()
	j.Chain = r.String()
	j.State = r.String()
	j.FinishedAt = r.Time()
	j.CreatedAt = r.Time()
	j.DueAt = r.Time()
	if n := r.Count(); n > 0 {
		j.Attempts = make([]Attempt, n)
		for i := range j.Attempts {
			a := &j.Attempts[i]
			a.At = r.Time()
			a.Duration = time.Duration(r.Varint())
			a.Status = int(r.Varint())
			a.Error = r.String()
			a.Body = r.String()
		}
	}
	j.LadderBase = int(r.Varint())
	if n := r.Count(); n > 0 {
		j.ReplayedAt = make([]time.Time, n)
		for i := range j.ReplayedAt {
			j.ReplayedAt[i] = r.Time()
		}
	}
	j.Lease = r.String()
	j.chainFlags = r.Byte()
	var body bodyRec
	switch r.Byte() {
	case bodyApart:
		body.apart = true
		if r.Err == nil && r.Off != len(v) {
			r.Fail()
		}
	case bodyInline:
		if r.Off == len(v) {
			r.Fail() // a body record is never empty
		}
		body.s = r.S[r.Off:]
	default:
		r.Fail()
	}
	return body, r.Err
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
	r := &binrec.Reader{B: v, S: s, Off: 1, Corrupt: errCorrupt}
	if s == "" && len(v) <= shareLimit {
		r.S = string(v) // one allocation for every string
	}
	var p Payload
	if n := r.Count(); n > 0 {
		p.Fields = make([]Field, n)
		for i := range p.Fields {
			p.Fields[i] = Field{Name: r.String(), Value: r.String()}
		}
	}
	if n := r.Count(); n > 0 {
		p.Files = make([]File, n)
		for i := range p.Files {
			p.Files[i] = File{Name: r.String(), Filename: r.String(), ContentType: r.String(), Data: r.Bytes()}
		}
	}
	switch r.Byte() {
	case 0:
	case 1:
		p.Mail = &Mail{Subject: r.String(), Text: r.String(), HTML: r.String()}
	default:
		r.Fail()
	}
	p.Prepare = r.String()
	if r.Err == nil && r.Off != len(v) {
		r.Fail()
	}
	j.Payload = p
	return r.Err
}

// EncodePayload returns a job's body record: its Payload in the binary encoding the stores
// share, starting with a version byte. A store keeps it as it is and gives it back to
// DecodePayload.
func EncodePayload(j *Job) []byte { return encodeBody(j) }

// DecodePayload decodes a body record (EncodePayload) into j's Payload. Nothing decoded points
// into v, which the caller may reuse.
func DecodePayload(v []byte, j *Job) error { return decodeBody(v, "", j) }
