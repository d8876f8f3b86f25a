package render

import "github.com/faxhook/caddy-faxhook/module/profile/fax"

// faxV2 is the fax object of Phaxio API v2: the v2.1 object without barcodes (v2.1 added
// them), in the same field order, RFC 3339 times and E.164 numbers. The v2 objects page lists
// the same fields and recipient fields as v2.1 otherwise.
type faxV2 struct {
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
	Recipients   []fax.Recipient   `json:"recipients"`
	ToNumber     *string           `json:"to_number"`
	ErrorID      *int              `json:"error_id"`
	ErrorType    *string           `json:"error_type"`
	ErrorMessage *string           `json:"error_message"`
}

// faxV2Of converts a v2.1 fax object to its v2 shape.
func faxV2Of(f *fax.Fax) faxV2 {
	// Only the collections v2 sends as {} or [] rather than null are defaulted: Normalize
	// would also touch the barcodes, whose backing array the caller's fax shares.
	g := *f
	if g.Tags == nil {
		g.Tags = map[string]string{}
	}
	if g.Recipients == nil {
		g.Recipients = []fax.Recipient{}
	}
	return faxV2{
		ID: g.ID, Direction: g.Direction, NumPages: g.NumPages, Status: g.Status, IsTest: g.IsTest,
		CreatedAt: g.CreatedAt, CallerID: g.CallerID, FromNumber: g.FromNumber, CompletedAt: g.CompletedAt,
		CallerName: g.CallerName, Cost: g.Cost, Tags: g.Tags, Recipients: g.Recipients, ToNumber: g.ToNumber,
		ErrorID: g.ErrorID, ErrorType: g.ErrorType, ErrorMessage: g.ErrorMessage,
	}
}
