// Package binrec is the compact binary encoding of the stores' job records: strings with their
// length, times with their zone offset, varints, and a Reader whose first error sticks. The
// Badger store and the PostgreSQL store lay their records out differently, in the same
// primitives.
package binrec

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"time"
)

// AppendString appends s with its length.
func AppendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// AppendTime appends t as a flag byte (0: the zero time, 1: UTC, 2: with a zone offset), the
// Unix seconds and nanoseconds and, for 2, the offset in seconds. The monotonic reading and the
// zone's name are dropped, as JSON does.
func AppendTime(b []byte, t time.Time) []byte {
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

// Reader decodes a record. The first error sticks (wrapping Corrupt) and later reads return
// zero values, so a decoder reads every field and checks Err once.
type Reader struct {
	// B is the record.
	B []byte
	// S is B as a string, for strings that share one allocation; "" to copy each string.
	S string
	// Off is where the next read starts.
	Off int
	// Err is the first error.
	Err error
	// Corrupt is the error that Err wraps.
	Corrupt error
}

// Fail records that the record is truncated or malformed at Off.
func (r *Reader) Fail() {
	if r.Err == nil {
		r.Err = fmt.Errorf("%w: truncated or malformed at byte %d", r.Corrupt, r.Off)
	}
	r.Off = len(r.B)
}

// Uvarint reads an unsigned varint.
func (r *Reader) Uvarint() uint64 {
	if r.Err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.B[r.Off:])
	if n <= 0 {
		r.Fail()
		return 0
	}
	r.Off += n
	return v
}

// Varint reads a signed varint, as binary.AppendVarint writes it.
func (r *Reader) Varint() int64 {
	if r.Err != nil {
		return 0
	}
	v, n := binary.Varint(r.B[r.Off:])
	if n <= 0 {
		r.Fail()
		return 0
	}
	r.Off += n
	return v
}

// Count reads a count of items that take at least one byte each.
func (r *Reader) Count() int {
	n := r.Uvarint()
	if n > uint64(len(r.B)-r.Off) {
		r.Fail()
		return 0
	}
	return int(n)
}

// Span reads a length and returns the bounds of that many bytes.
func (r *Reader) Span() (int, int) {
	n := r.Uvarint()
	if r.Err != nil || n > uint64(len(r.B)-r.Off) {
		r.Fail()
		return 0, 0
	}
	start := r.Off
	r.Off += int(n)
	return start, r.Off
}

// String reads a string: a part of S when S is set, else a copy.
func (r *Reader) String() string {
	start, end := r.Span()
	if start == end {
		return ""
	}
	if r.S != "" {
		return r.S[start:end]
	}
	return string(r.B[start:end])
}

// Bytes reads bytes, as a copy: what a decoder returns never points into the record, which may
// be memory a store reuses or unmaps.
func (r *Reader) Bytes() []byte {
	start, end := r.Span()
	if start == end {
		return nil
	}
	return slices.Clone(r.B[start:end])
}

// Byte reads one byte.
func (r *Reader) Byte() byte {
	if r.Err != nil || r.Off >= len(r.B) {
		r.Fail()
		return 0
	}
	c := r.B[r.Off]
	r.Off++
	return c
}

// Time reads a time as AppendTime writes it: UTC, the local zone when the offset is the local
// one there and then (as encoding/json gives), else a fixed zone.
func (r *Reader) Time() time.Time {
	flag := r.Byte()
	if flag == 0 || r.Err != nil {
		return time.Time{}
	}
	sec := r.Varint()
	nsec := r.Uvarint()
	if nsec >= 1e9 {
		r.Fail()
		return time.Time{}
	}
	t := time.Unix(sec, int64(nsec))
	switch flag {
	case 1:
		return t.UTC()
	case 2:
		off := r.Varint()
		if off < math.MinInt32 || off > math.MaxInt32 {
			r.Fail()
			return time.Time{}
		}
		if _, local := t.Zone(); int64(local) == off {
			return t
		}
		return t.In(time.FixedZone("", int(off)))
	}
	r.Fail()
	return time.Time{}
}

// End reports Err, or a failure when bytes are left after the last field.
func (r *Reader) End() error {
	if r.Err == nil && r.Off != len(r.B) {
		r.Fail()
	}
	return r.Err
}
