package profile

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
	"time"
)

// path is a parsed dotted path, or a constant.
type path struct {
	text     string
	segs     []string // nil: the value itself
	isConst  bool
	constant string
}

// parsePath parses a dotted path. "" and "." are the value itself; with consts, "=TEXT" is the
// constant TEXT.
func parsePath(s string, consts bool) (path, error) {
	p := path{text: s}
	if c, ok := strings.CutPrefix(s, "="); ok && consts {
		p.isConst, p.constant = true, c
		return p, nil
	}
	if s == "" || s == "." {
		return p, nil
	}
	p.segs = strings.Split(s, ".")
	for _, seg := range p.segs {
		if seg == "" {
			return path{}, fmt.Errorf("path %q has an empty segment", s)
		}
	}
	return p, nil
}

// mustPath parses a path that Validate accepted, or returns an error naming the field.
func mustPath(field, s string, consts bool) (path, error) {
	p, err := parsePath(s, consts)
	if err != nil {
		return path{}, fmt.Errorf("%s: %w", field, err)
	}
	return p, nil
}

// lookupState tells what a path lookup found.
type lookupState int

const (
	missing lookupState = iota // a key or index was not there
	null                       // the path ran into a JSON null
	found
)

// lookup follows p from v, a value decoded by decodeJSON (map[string]any, []any, string,
// json.Number, bool or nil).
func (p path) lookup(v any) (any, lookupState, error) {
	if p.isConst {
		return p.constant, found, nil
	}
	cur := v
	for i, seg := range p.segs {
		switch c := cur.(type) {
		case nil:
			return nil, null, nil
		case map[string]any:
			next, ok := c[seg]
			if !ok {
				return nil, missing, nil
			}
			cur = next
		case []any:
			idx, err := strconv.Atoi(seg)
			if err != nil || idx < 0 {
				return nil, missing, fmt.Errorf("path %q: %s is an array, and %q is not an index", p.text, p.prefix(i), seg)
			}
			if idx >= len(c) {
				return nil, missing, nil
			}
			cur = c[idx]
		default:
			return nil, missing, fmt.Errorf("path %q: %s is %s, not an object", p.text, p.prefix(i), describe(c))
		}
	}
	if cur == nil {
		return nil, null, nil
	}
	return cur, found, nil
}

// prefix names the value reached after i segments, for error messages.
func (p path) prefix(i int) string {
	if i == 0 {
		return "the value"
	}
	return strconv.Quote(strings.Join(p.segs[:i], "."))
}

// describe names a decoded value's JSON type, with a short excerpt of scalars.
func describe(v any) string {
	switch c := v.(type) {
	case nil:
		return "null"
	case map[string]any:
		return "an object"
	case []any:
		return "an array"
	case string:
		if len(c) > 40 {
			c = c[:40] + "…"
		}
		return "the string " + strconv.Quote(c)
	case json.Number:
		return "the number " + string(c)
	case bool:
		return "the boolean " + strconv.FormatBool(c)
	}
	return fmt.Sprintf("%T", v)
}

// decodeJSON decodes a whole body, keeping numbers as json.Number.
func decodeJSON(body []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if len(bytes.TrimSpace(body[dec.InputOffset():])) > 0 {
		return nil, errors.New("data after the JSON value")
	}
	return v, nil
}

// asString accepts a string, or a number as its text.
func asString(v any) (string, error) {
	switch c := v.(type) {
	case string:
		return c, nil
	case json.Number:
		return string(c), nil
	}
	return "", fmt.Errorf("%s is not a string", describe(v))
}

// numberText returns the text of a JSON number, or of a string that may hold one (trimmed of
// surrounding spaces); false for any other value.
func numberText(v any) (string, bool) {
	switch c := v.(type) {
	case json.Number:
		return string(c), true
	case string:
		return strings.TrimSpace(c), true
	}
	return "", false
}

// asInt64 accepts an integral number or a string holding one (surrounding spaces allowed).
func asInt64(v any) (int64, error) {
	text, ok := numberText(v)
	if !ok {
		return 0, fmt.Errorf("%s is not an integer", describe(v))
	}
	if n, err := strconv.ParseInt(text, 10, 64); err == nil {
		return n, nil
	}
	// Integral values written as 3.0 or 3e0.
	if text != "" && strings.Trim(text, "0123456789.eE+-") == "" {
		if f, err := strconv.ParseFloat(text, 64); err == nil && f == math.Trunc(f) && f >= math.MinInt64 && f < math.MaxInt64 {
			return int64(f), nil
		}
	}
	return 0, fmt.Errorf("%s is not an integer", describe(v))
}

// asInt is asInt64 within the range of int.
func asInt(v any) (int, error) {
	n, err := asInt64(v)
	if err != nil {
		return 0, err
	}
	if n < math.MinInt || n > math.MaxInt {
		return 0, fmt.Errorf("%s is out of range", describe(v))
	}
	return int(n), nil
}

// asBool accepts true/false or the strings "true"/"false".
func asBool(v any) (bool, error) {
	switch c := v.(type) {
	case bool:
		return c, nil
	case string:
		switch strings.TrimSpace(c) {
		case "true":
			return true, nil
		case "false":
			return false, nil
		}
	}
	return false, fmt.Errorf("%s is not a boolean", describe(v))
}

// timeReader reads times in one TimeFormat and writes them in the v2.1 layout.
type timeReader struct {
	format string
	zone   *time.Location // output zone; nil: keep the upstream's offset (UTC for unix times)
}

func newTimeReader(format, zone string) (timeReader, error) {
	if err := checkTimeFormat(format); err != nil {
		return timeReader{}, fmt.Errorf("time_format: %w", err)
	}
	loc, err := loadZone(zone)
	if err != nil {
		return timeReader{}, fmt.Errorf("time_zone: %w", err)
	}
	if format == "" {
		format = TimeRFC3339
	}
	return timeReader{format: format, zone: loc}, nil
}

// read converts a decoded value to a v2.1 time string.
func (tr timeReader) read(v any) (string, error) {
	var t time.Time
	var err error
	switch tr.format {
	case TimeUnix, TimeUnixMS:
		var text string
		switch c := v.(type) {
		case json.Number:
			text = string(c)
		case string:
			text = strings.TrimSpace(c)
		default:
			return "", fmt.Errorf("%s is not a %s time", describe(v), tr.format)
		}
		unit := time.Second
		if tr.format == TimeUnixMS {
			unit = time.Millisecond
		}
		t, err = parseEpoch(text, unit)
		if err != nil {
			return "", fmt.Errorf("%s is not a %s time: %w", describe(v), tr.format, err)
		}
		t = t.In(time.UTC)
	default:
		s, ok := v.(string)
		if !ok {
			return "", fmt.Errorf("%s is not a time string", describe(v))
		}
		if tr.format == TimeRFC3339 {
			t, err = time.Parse(time.RFC3339Nano, strings.TrimSpace(s))
		} else {
			in := time.UTC
			if tr.zone != nil {
				in = tr.zone
			}
			t, err = time.ParseInLocation(tr.format, strings.TrimSpace(s), in)
		}
		if err != nil {
			return "", fmt.Errorf("%s does not parse as %s: %w", describe(v), tr.format, err)
		}
	}
	if tr.zone != nil {
		t = t.In(tr.zone)
	}
	return t.Format(V21TimeLayout), nil
}

// maxEpoch bounds epoch values to years 0001–9999, which time formats as four digits.
var maxEpoch = big.NewRat(253402300799, 1)

// parseEpoch parses a decimal number of units since 1970 exactly ("1636043310.123", "-5",
// "1.6e9"), to the nanosecond.
func parseEpoch(text string, unit time.Duration) (time.Time, error) {
	if text == "" || len(text) > 64 || strings.Trim(text, "0123456789.eE+-") != "" {
		return time.Time{}, errors.New("not a decimal number")
	}
	if i := strings.IndexAny(text, "eE"); i >= 0 {
		// Bound the exponent before big.Rat computes 10^exp.
		if exp, err := strconv.Atoi(text[i+1:]); err != nil || exp < -30 || exp > 30 {
			return time.Time{}, errors.New("exponent out of range")
		}
	}
	r, ok := new(big.Rat).SetString(text)
	if !ok {
		return time.Time{}, errors.New("not a decimal number")
	}
	secs := new(big.Rat).Mul(r, big.NewRat(int64(unit), int64(time.Second)))
	if new(big.Rat).Abs(secs).Cmp(maxEpoch) > 0 {
		return time.Time{}, errors.New("out of range")
	}
	ns := new(big.Rat).Mul(secs, big.NewRat(int64(time.Second), 1))
	q := new(big.Int).Quo(ns.Num(), ns.Denom()) // truncates below a nanosecond
	whole := new(big.Int).Quo(q, big.NewInt(int64(time.Second)))
	frac := new(big.Int).Rem(q, big.NewInt(int64(time.Second)))
	return time.Unix(whole.Int64(), frac.Int64()), nil
}
