package render

import (
	"strings"
	"time"

	"github.com/faxhook/caddy-faxhook/module/profile/fax"
)

// faxV1 is the fax object of Phaxio API v1, as its objects page documents it: times as Unix
// seconds (requested_at, completed_at), numbers as 10-digit national numbers for North America,
// the error text in error_code. Its field order follows the v1 faxList example (id, num_pages,
// cost, direction, status, is_test, requested_at, …, completed_at, recipients); the fields the
// page marks as "not always present" are left out when they do not apply.
type faxV1 struct {
	ID          int64             `json:"id"`
	NumPages    int               `json:"num_pages"`
	Cost        int               `json:"cost"`
	Direction   string            `json:"direction"`
	Status      string            `json:"status"`
	IsTest      bool              `json:"is_test"`
	RequestedAt int64             `json:"requested_at"`
	FromNumber  string            `json:"from_number,omitempty"`
	ToNumber    string            `json:"to_number,omitempty"`
	CallerID    string            `json:"caller_id,omitempty"`
	CompletedAt *int64            `json:"completed_at,omitempty"`
	ErrorType   *string           `json:"error_type,omitempty"`
	ErrorID     *int              `json:"error_id,omitempty"`
	ErrorCode   *string           `json:"error_code,omitempty"`
	Recipients  []recipientV1     `json:"recipients,omitempty"`
	Tags        map[string]string `json:"tags,omitempty"`
}

// recipientV1 is a v1 recipient object.
type recipientV1 struct {
	Number      string  `json:"number"`
	Status      string  `json:"status"`
	RetryCount  int     `json:"retry_count"`
	Bitrate     *int    `json:"bitrate,omitempty"`
	Resolution  *int    `json:"resolution,omitempty"`
	ErrorType   *string `json:"error_type,omitempty"`
	ErrorID     *int    `json:"error_id,omitempty"`
	ErrorCode   *string `json:"error_code,omitempty"`
	CompletedAt *int64  `json:"completed_at,omitempty"`
}

// faxV1Of converts a v2.1 fax object to its v1 shape.
func faxV1Of(f *fax.Fax) faxV1 {
	v := faxV1{
		ID: f.ID, NumPages: f.NumPages, Cost: f.Cost, Direction: f.Direction, Status: f.Status,
		IsTest: f.IsTest, RequestedAt: unixOf(f.CreatedAt), CompletedAt: unixPtr(f.CompletedAt),
		ErrorType: f.ErrorType, ErrorID: f.ErrorID, ErrorCode: f.ErrorMessage,
	}
	if len(f.Tags) > 0 {
		v.Tags = f.Tags
	}
	if f.Direction == fax.DirectionReceived {
		v.FromNumber, v.ToNumber = numberV1(deref(f.FromNumber)), numberV1(deref(f.ToNumber))
		return v
	}
	v.CallerID = numberV1(deref(f.CallerID))
	v.Recipients = make([]recipientV1, 0, len(f.Recipients))
	for _, r := range f.Recipients {
		status := f.Status
		if r.Status != nil {
			status = *r.Status
		}
		v.Recipients = append(v.Recipients, recipientV1{
			Number: numberV1(r.PhoneNumber), Status: status, RetryCount: r.RetryCount,
			Bitrate: r.Bitrate, Resolution: r.Resolution, ErrorType: r.ErrorType, ErrorID: r.ErrorID,
			ErrorCode: r.ErrorMessage, CompletedAt: unixPtr(r.CompletedAt),
		})
	}
	return v
}

// numberV1 writes an E.164 number as v1 did: v1 documents "a 10 digit phone number", so a
// North American number (+1 and ten digits) loses its +1; any other number keeps its country
// code, without the +, since dropping it would make the number ambiguous.
func numberV1(e164 string) string {
	if len(e164) == 12 && strings.HasPrefix(e164, "+1") {
		return e164[2:]
	}
	return strings.TrimPrefix(e164, "+")
}

// unixOf returns an RFC 3339 time as Unix seconds; 0 when it is empty or unreadable.
func unixOf(s string) int64 {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return 0
	}
	return t.Unix()
}

// unixPtr is unixOf for a nullable time: nil stays nil (and is left out).
func unixPtr(s *string) *int64 {
	if s == nil || *s == "" {
		return nil
	}
	n := unixOf(*s)
	return &n
}
