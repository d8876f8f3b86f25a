// The Phaxio v2.1 extractor finds Phaxio API v2.1 fax objects in JSON response bodies captured by the
// faxhook handler: {"success":true,"data":{...}} for one fax, "data":[...] for a list, and
// {"data":{"id":N}} for send, resend and cancel responses.
//
// Decoding is tolerant, because the upstream is a fax service that only imitates Phaxio: unknown
// fields are ignored, ids and integers may be JSON numbers or numeric strings, nullable fields may
// be null, and a field of the wrong type is skipped (left zero) instead of failing the fax.

package profile

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/faxhook/caddy-faxhook/module/profile/fax"
)

// Object is one fax object found in a body, as v2.1 fields plus what faxhook needs beyond them.
type Object struct {
	// Fax holds the v2.1 fields that were present and well typed; the others are zero.
	Fax fax.Fax
	// Full reports whether the object carried a "status" (a complete fax object, not just
	// {"id":N}).
	Full bool
	// CurrentPage maps a recipient's phone_number to the value of its fax.ExtCurrentPage
	// extension field, for recipients that carried one; nil if none did.
	CurrentPage map[string]int
	// UpstreamID is the id as the upstream spells it, when a mapping derived Fax.ID from it
	// (see DeriveID) or read it as text; empty when it is Fax.ID in decimal.
	UpstreamID string
}

// ErrNoObjects wraps the reasons Phaxio reports for a body that carries no fax data.
var ErrNoObjects = errors.New("no fax data")

// envelope is the v2.1 response envelope.
type envelope struct {
	Success flexString `json:"success"`
	Message flexString `json:"message"`
	Data    dataField  `json:"data"`
}

// dataField decodes "data" as one fax object or a list of them.
type dataField struct {
	kind byte // '{', '[', 'n' (null) or another first byte; 0 when absent
	one  wireFax
	list []wireFax
	raw  string // short text of a scalar, for the error message
}

// UnmarshalJSON implements json.Unmarshaler. The body was validated before, so only type
// mismatches can occur; those leave the mismatched value zero (absent) and are not errors.
func (d *dataField) UnmarshalJSON(b []byte) error {
	d.kind = firstByte(b)
	var err error
	switch d.kind {
	case '{':
		err = json.Unmarshal(b, &d.one)
	case '[':
		err = json.Unmarshal(b, &d.list)
	default:
		d.raw = truncate(b)
	}
	return ignoreTypeErrors(err)
}

// ignoreTypeErrors drops *json.UnmarshalTypeError: encoding/json reports it after decoding
// everything else "as best it can", leaving only the mismatched value unset.
func ignoreTypeErrors(err error) error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return nil
	}
	return err
}

// parseEnvelope decodes body and returns its data, or an error describing why there is none.
func parseEnvelope(body []byte) (*dataField, error) {
	var env envelope
	if err := ignoreTypeErrors(json.Unmarshal(body, &env)); err != nil {
		return nil, fmt.Errorf("extract: body is not JSON: %w", err)
	}
	if c := firstByte(body); c != '{' {
		return nil, fmt.Errorf("extract: %w: body is %s, not a JSON object", ErrNoObjects, truncate(body))
	}
	if env.Success.present && !env.Success.null {
		switch {
		case env.Success.raw == "true" || env.Success.quoted && env.Success.v == "true":
		case env.Success.raw == "false" || env.Success.quoted && env.Success.v == "false":
			return nil, fmt.Errorf("extract: %w: success is false (message %q)", ErrNoObjects, env.Message.v)
		default:
			return nil, fmt.Errorf("extract: %w: success is %s, not a boolean", ErrNoObjects, env.Success.text())
		}
	}
	switch env.Data.kind {
	case 0, 'n':
		return nil, fmt.Errorf("extract: %w: no data", ErrNoObjects)
	case '{', '[':
		return &env.Data, nil
	}
	return nil, fmt.Errorf("extract: %w: data is %s, neither object nor array", ErrNoObjects, env.Data.raw)
}

// Phaxio extracts fax objects from a Phaxio-shaped envelope: {"success":true,"data":{...}} or
// "data":[...]. A body with success:false, no data, or that is not JSON yields none and an error
// describing why (for logs). Objects without a numeric "id" (or a string holding one) are
// skipped without error, so a body whose data holds no fax (e.g. a phone number) yields none and
// a nil error.
func Phaxio(body []byte) ([]Object, error) {
	data, err := parseEnvelope(body)
	if err != nil {
		return nil, err
	}
	if data.kind == '{' {
		o, ok := data.one.object()
		if !ok {
			return nil, nil
		}
		return []Object{o}, nil
	}
	out := make([]Object, 0, len(data.list))
	for i := range data.list {
		if o, ok := data.list[i].object(); ok {
			out = append(out, o)
		}
	}
	return out, nil
}

// ID returns data.id of a send or resend response ({"success":true,"data":{"id":N}}); ok is
// false if the body is not such a response.
func ID(body []byte) (id int64, ok bool) {
	data, err := parseEnvelope(body)
	if err != nil || data.kind != '{' || !data.one.ID.ok {
		return 0, false
	}
	return data.one.ID.n, true
}

// wireFax receives a fax object; every leaf is a tolerant flex type, and containers of the wrong
// JSON type stay nil (absent).
type wireFax struct {
	ID           flexInt               `json:"id"`
	Direction    flexString            `json:"direction"`
	NumPages     flexInt               `json:"num_pages"`
	Status       flexString            `json:"status"`
	IsTest       flexString            `json:"is_test"`
	CreatedAt    flexString            `json:"created_at"`
	CallerID     flexString            `json:"caller_id"`
	FromNumber   flexString            `json:"from_number"`
	CompletedAt  flexString            `json:"completed_at"`
	CallerName   flexString            `json:"caller_name"`
	Cost         flexInt               `json:"cost"`
	Tags         map[string]flexString `json:"tags"`
	Recipients   []wireRecipient       `json:"recipients"`
	ToNumber     flexString            `json:"to_number"`
	ErrorID      flexInt               `json:"error_id"`
	ErrorType    flexString            `json:"error_type"`
	ErrorMessage flexString            `json:"error_message"`
	Barcodes     []wireBarcode         `json:"barcodes"`
}

type wireRecipient struct {
	PhoneNumber  flexString `json:"phone_number"`
	Status       flexString `json:"status"`
	RetryCount   flexInt    `json:"retry_count"`
	CompletedAt  flexString `json:"completed_at"`
	Bitrate      flexInt    `json:"bitrate"`
	Resolution   flexInt    `json:"resolution"`
	ErrorType    flexString `json:"error_type"`
	ErrorID      flexInt    `json:"error_id"`
	ErrorMessage flexString `json:"error_message"`
	CurrentPage  flexInt    `json:"x_current_page"`

	isObject bool
}

// UnmarshalJSON implements json.Unmarshaler, so that a non-object element is skipped.
func (r *wireRecipient) UnmarshalJSON(b []byte) error {
	if firstByte(b) != '{' {
		return nil
	}
	type plain wireRecipient
	r.isObject = true
	return ignoreTypeErrors(json.Unmarshal(b, (*plain)(r)))
}

type wireBarcode struct {
	Type       flexString      `json:"type"`
	Page       flexInt         `json:"page"`
	Value      flexString      `json:"value"`
	Identifier json.RawMessage `json:"identifier"`
	Metadata   json.RawMessage `json:"metadata"`

	isObject bool
}

// UnmarshalJSON implements json.Unmarshaler, so that a non-object element is skipped.
func (b *wireBarcode) UnmarshalJSON(data []byte) error {
	if firstByte(data) != '{' {
		return nil
	}
	type plain wireBarcode
	b.isObject = true
	return ignoreTypeErrors(json.Unmarshal(data, (*plain)(b)))
}

// object converts a decoded fax object; ok is false if it has no usable id.
func (w *wireFax) object() (o Object, ok bool) {
	if !w.ID.ok {
		return o, false
	}
	f := &o.Fax
	f.ID = w.ID.n

	str := func(v flexString, dst *string) bool {
		if v.isString() {
			*dst = v.v
			return true
		}
		return false
	}
	nullStr := func(v flexString, dst **string) {
		if p, ok := v.nullable(); ok {
			*dst = p
		}
	}
	integer := func(v flexInt, dst *int) {
		if n, ok := v.int(); ok {
			*dst = n
		}
	}

	str(w.Direction, &f.Direction)
	integer(w.NumPages, &f.NumPages)
	o.Full = str(w.Status, &f.Status)
	if v, ok := w.IsTest.bool(); ok {
		f.IsTest = v
	}
	str(w.CreatedAt, &f.CreatedAt)
	nullStr(w.CallerID, &f.CallerID)
	nullStr(w.FromNumber, &f.FromNumber)
	nullStr(w.CompletedAt, &f.CompletedAt)
	nullStr(w.CallerName, &f.CallerName)
	integer(w.Cost, &f.Cost)
	if w.Tags != nil {
		f.Tags = make(map[string]string, len(w.Tags))
		for k, v := range w.Tags {
			if v.isString() {
				f.Tags[k] = v.v
			}
		}
	}
	if w.Recipients != nil {
		f.Recipients = make([]fax.Recipient, 0, len(w.Recipients))
		for i := range w.Recipients {
			wr := &w.Recipients[i]
			if !wr.isObject {
				continue
			}
			r := fax.Recipient{}
			if wr.PhoneNumber.isString() {
				r.PhoneNumber = wr.PhoneNumber.v
			}
			r.Status, _ = wr.Status.nullable()
			r.RetryCount, _ = wr.RetryCount.int()
			r.CompletedAt, _ = wr.CompletedAt.nullable()
			r.Bitrate, _ = wr.Bitrate.nullableInt()
			r.Resolution, _ = wr.Resolution.nullableInt()
			r.ErrorType, _ = wr.ErrorType.nullable()
			r.ErrorID, _ = wr.ErrorID.nullableInt()
			r.ErrorMessage, _ = wr.ErrorMessage.nullable()
			f.Recipients = append(f.Recipients, r)
			if page, ok := wr.CurrentPage.int(); ok && r.PhoneNumber != "" {
				if o.CurrentPage == nil {
					o.CurrentPage = make(map[string]int, len(w.Recipients))
				}
				o.CurrentPage[r.PhoneNumber] = page
			}
		}
	}
	nullStr(w.ToNumber, &f.ToNumber)
	if v, ok := w.ErrorID.nullableInt(); ok {
		f.ErrorID = v
	}
	nullStr(w.ErrorType, &f.ErrorType)
	nullStr(w.ErrorMessage, &f.ErrorMessage)
	if w.Barcodes != nil {
		f.Barcodes = make([]fax.Barcode, 0, len(w.Barcodes))
		for i := range w.Barcodes {
			wb := &w.Barcodes[i]
			if !wb.isObject {
				continue
			}
			b := fax.Barcode{Identifier: wb.Identifier, Metadata: wb.Metadata}
			if wb.Type.isString() {
				b.Type = wb.Type.v
			}
			b.Page, _ = wb.Page.int()
			if wb.Value.isString() {
				b.Value = wb.Value.v
			}
			f.Barcodes = append(f.Barcodes, b)
		}
	}
	return o, true
}

// flexString is a JSON value decoded without failing: strings are unquoted, numbers and the
// literals true/false are kept as their text.
type flexString struct {
	v       string // unquoted string, or the literal text of a number/boolean
	raw     string // literal text of a non-string scalar ("true", "12"); "" for strings
	present bool
	null    bool
	quoted  bool // a JSON string
	number  bool
}

// UnmarshalJSON implements json.Unmarshaler; it never fails.
func (s *flexString) UnmarshalJSON(b []byte) error {
	*s = flexString{present: true}
	switch c := firstByte(b); {
	case c == 'n':
		s.null = true
	case c == '"':
		b = bytes.TrimSpace(b)
		if bytes.IndexByte(b, '\\') < 0 && utf8.Valid(b) {
			s.v = string(b[1 : len(b)-1]) // what encoding/json would decode, without its detour
		} else if json.Unmarshal(b, &s.v) != nil {
			s.present = false
			return nil
		}
		s.quoted = true
	case c == 't' || c == 'f':
		s.raw = string(bytes.TrimSpace(b))
	case c == '-' || c >= '0' && c <= '9':
		s.raw = string(bytes.TrimSpace(b))
		s.v, s.number = s.raw, true
	default: // object or array: not a string
		s.present = false
	}
	return nil
}

// isString reports whether the value can stand for a string: a JSON string, or a number (e.g. a
// phone number sent unquoted).
func (s flexString) isString() bool { return s.quoted || s.number }

// nullable returns nil for null, or the string; ok is false for absent or unusable values.
func (s flexString) nullable() (*string, bool) {
	switch {
	case s.null:
		return nil, true
	case s.isString():
		v := s.v
		return &v, true
	}
	return nil, false
}

// bool accepts true/false or the strings "true"/"false".
func (s flexString) bool() (value, ok bool) {
	t := s.raw
	if s.quoted {
		t = s.v
	}
	switch t {
	case "true":
		return true, true
	case "false":
		return false, true
	}
	return false, false
}

// text describes the value for an error message.
func (s flexString) text() string {
	if s.quoted {
		return strconv.Quote(s.v)
	}
	if s.raw != "" {
		return s.raw
	}
	return "an object or array"
}

// flexInt is an integer given as an integral JSON number or a string holding one.
type flexInt struct {
	n    int64
	ok   bool
	null bool
}

// UnmarshalJSON implements json.Unmarshaler; it never fails.
func (f *flexInt) UnmarshalJSON(b []byte) error {
	*f = flexInt{}
	if firstByte(b) == 'n' {
		f.null = true
		return nil
	}
	f.n, f.ok = int64Value(b)
	return nil
}

// int returns the value within the range of int.
func (f flexInt) int() (int, bool) {
	if !f.ok || f.n < math.MinInt || f.n > math.MaxInt {
		return 0, false
	}
	return int(f.n), true
}

// nullableInt returns nil for null, or the value; ok is false for absent or unusable values.
func (f flexInt) nullableInt() (*int, bool) {
	if f.null {
		return nil, true
	}
	n, ok := f.int()
	if !ok {
		return nil, false
	}
	return &n, true
}

// firstByte returns the first non-space byte of a JSON value, or 0.
func firstByte(raw []byte) byte {
	for _, c := range raw {
		switch c {
		case ' ', '\t', '\r', '\n':
			continue
		}
		return c
	}
	return 0
}

// int64Value accepts an integral JSON number or a string holding one ("123", " 123 ", "1.0e2").
func int64Value(raw []byte) (int64, bool) {
	b := bytes.TrimSpace(raw)
	if len(b) >= 2 && b[0] == '"' {
		if bytes.IndexByte(b, '\\') >= 0 {
			var s string
			if json.Unmarshal(b, &s) != nil {
				return 0, false
			}
			b = []byte(s)
		} else {
			b = b[1 : len(b)-1]
		}
		b = bytes.TrimSpace(b)
	}
	if n, ok := parseInt(b); ok {
		return n, true
	}
	// Integral values written as 123.0 or 1.23e2: only the JSON number alphabet, so that
	// ParseFloat's extras (hex, "Inf", underscores) are not accepted.
	if len(b) == 0 || strings.Trim(string(b), "0123456789.eE+-") != "" {
		return 0, false
	}
	f, err := strconv.ParseFloat(string(b), 64)
	if err != nil || f != math.Trunc(f) || f < math.MinInt64 || f >= math.MaxInt64 {
		return 0, false
	}
	return int64(f), true
}

// parseInt parses an optionally negative decimal integer without allocating.
func parseInt(b []byte) (int64, bool) {
	neg := len(b) > 0 && b[0] == '-'
	if neg {
		b = b[1:]
	}
	if len(b) == 0 || len(b) > 19 {
		return 0, false
	}
	var n uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
	}
	switch {
	case neg && n <= 1<<63:
		return int64(-n), true // -(1<<63) wraps to MinInt64
	case !neg && n < 1<<63:
		return int64(n), true
	}
	return 0, false
}

// truncate shortens a raw value for an error message.
func truncate(raw []byte) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) > 40 {
		return string(raw[:40]) + "…"
	}
	return string(raw)
}
