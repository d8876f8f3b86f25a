package pgstore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/faxhook/caddy-faxhook/queue/internal/binrec"

	"github.com/faxhook/caddy-faxhook/queue"
)

// A job row keeps in columns what queries select, order or lock by (state, destination, due and
// finish times, chain, lease), and the rest of the job in two binary records: head (everything
// else that is not the payload, in binrec's primitives) and body (the Payload, as
// queue.EncodePayload writes it for every store). Each record starts with a version byte; only
// the current layout is read. A binary encoding, not JSON or jsonb, because a job's strings are
// Go strings, which may hold any bytes (a chain holds a NUL), and must come back byte for byte.
const headVersion = 1

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
	b = binrec.AppendString(b, j.EventID)
	b = binary.AppendUvarint(b, uint64(len(j.Meta)))
	for _, l := range j.Meta {
		b = binrec.AppendString(b, l.Name)
		b = binrec.AppendString(b, l.Value)
	}
	b = binrec.AppendString(b, j.URL)
	b = binrec.AppendTime(b, j.CreatedAt)
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
	return b
}

// decodeHead decodes a head record into j.
func decodeHead(v []byte, j *queue.Job) error {
	if len(v) == 0 || v[0] != headVersion {
		return fmt.Errorf("%w: unknown head record version", errCorrupt)
	}
	r := &binrec.Reader{B: v, Off: 1, Corrupt: errCorrupt}
	j.EventID = r.String()
	j.Meta = nil
	if n := r.Count(); n > 0 {
		j.Meta = make(queue.Labels, n)
		for i := range j.Meta {
			j.Meta[i] = queue.Label{Name: r.String(), Value: r.String()}
		}
	}
	j.URL = r.String()
	j.CreatedAt = r.Time()
	j.Attempts = nil
	if n := r.Count(); n > 0 {
		j.Attempts = make([]queue.Attempt, n)
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
	j.ReplayedAt = nil
	if n := r.Count(); n > 0 {
		j.ReplayedAt = make([]time.Time, n)
		for i := range j.ReplayedAt {
			j.ReplayedAt[i] = r.Time()
		}
	}
	return r.End()
}
