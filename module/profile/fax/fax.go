// Package fax holds the Phaxio API v2.1 domain types that every part of faxhook shares: the fax
// object as webhooks carry it, its recipients and barcodes, the status vocabulary and the event
// types. It has no dependencies beyond the standard library so that the handler, the app and the
// queue can all import it without a cycle.
package fax

import "encoding/json"

// Direction values of a fax.
const (
	DirectionSent     = "sent"
	DirectionReceived = "received"
)

// Fax statuses (v2.1).
const (
	StatusQueued         = "queued"
	StatusPendingBatch   = "pendingbatch"
	StatusInProgress     = "inprogress"
	StatusSuccess        = "success"
	StatusFailure        = "failure"
	StatusPartialSuccess = "partialsuccess"
)

// Recipient statuses (v2.1) beyond those shared with faxes.
const (
	RecipientRinging    = "ringing"
	RecipientCallActive = "callactive"
	RecipientWillRetry  = "willretry"
)

// Event types of v2.1 webhooks.
const (
	EventFaxCompleted     = "fax_completed"
	EventTransmittingPage = "transmitting_page"
	EventRetryScheduled   = "retry_scheduled"
)

// ExtCurrentPage is the name of the recipient extension field with which a fax service that knows
// which page is on the wire exposes it: the 1-based number of the page now (or last) being
// transmitted to that recipient, 0 before the first page. Phaxio's v2.1 object has no such field;
// the simulated service in examples/ adds it. Extension fields are never forwarded in webhooks.
const ExtCurrentPage = "x_current_page"

// IsTerminal reports whether a fax status is final (postflight): success, failure or
// partialsuccess.
func IsTerminal(status string) bool {
	switch status {
	case StatusSuccess, StatusFailure, StatusPartialSuccess:
		return true
	}
	return false
}

// Fax is the v2.1 fax object. Field order and nullability follow Phaxio's own responses exactly,
// because receivers sign the raw JSON string they receive in the `fax` form field.
type Fax struct {
	ID           int64             `json:"id"`
	Direction    string            `json:"direction"`
	NumPages     int               `json:"num_pages"`
	Status       string            `json:"status"`
	IsTest       bool              `json:"is_test"`
	CreatedAt    string            `json:"created_at"`
	CallerID     *string           `json:"caller_id"`
	FromNumber   *string           `json:"from_number"`
	CompletedAt  *string           `json:"completed_at"`
	CallerName   *string           `json:"caller_name"`
	Cost         int               `json:"cost"`
	Tags         map[string]string `json:"tags"`
	Recipients   []Recipient       `json:"recipients"`
	ToNumber     *string           `json:"to_number"`
	ErrorID      *int              `json:"error_id"`
	ErrorType    *string           `json:"error_type"`
	ErrorMessage *string           `json:"error_message"`
	Barcodes     []Barcode         `json:"barcodes"`
}

// Recipient is one destination of a sent fax.
type Recipient struct {
	PhoneNumber  string  `json:"phone_number"`
	Status       *string `json:"status"`
	RetryCount   int     `json:"retry_count"`
	CompletedAt  *string `json:"completed_at"`
	Bitrate      *int    `json:"bitrate"`
	Resolution   *int    `json:"resolution"`
	ErrorType    *string `json:"error_type"`
	ErrorID      *int    `json:"error_id"`
	ErrorMessage *string `json:"error_message"`
}

// Barcode is a barcode found on a received fax.
type Barcode struct {
	Type       string          `json:"type"`
	Page       int             `json:"page"`
	Value      string          `json:"value"`
	Identifier json.RawMessage `json:"identifier"`
	Metadata   json.RawMessage `json:"metadata"`
}

// Normalize fills the collections that v2.1 always sends as `{}` or `[]` rather than null.
func (f *Fax) Normalize() {
	if f.Tags == nil {
		f.Tags = map[string]string{}
	}
	if f.Recipients == nil {
		f.Recipients = []Recipient{}
	}
	if f.Barcodes == nil {
		f.Barcodes = []Barcode{}
	}
	for i := range f.Barcodes {
		if len(f.Barcodes[i].Identifier) == 0 {
			f.Barcodes[i].Identifier = json.RawMessage("null")
		}
		if len(f.Barcodes[i].Metadata) == 0 {
			f.Barcodes[i].Metadata = json.RawMessage("null")
		}
	}
}

// JSON returns the exact v2.1 encoding of the fax object as sent in the `fax` form field: no
// extension fields, v2.1 field order, no insignificant white space.
func (f Fax) JSON() ([]byte, error) {
	f.Normalize()
	return json.Marshal(f)
}

// Str returns a pointer to s, for the nullable string fields.
func Str(s string) *string { return &s }

// Int returns a pointer to n, for the nullable integer fields.
func Int(n int) *int { return &n }
