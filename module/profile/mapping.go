// The JSON mapping lets faxhook observe a fax service whose REST API is not shaped like Phaxio's.
// A Mapping names the service's routes and says where each field of a fax lives in its JSON; the
// extractor builds the same Object values that Phaxio builds from a Phaxio
// profile body, so that the rest of faxhook cannot tell which shape the upstream has.
//
// # Routes
//
// A route is a method and a path pattern, "GET /api/fax/jobs/{id}". The segment "{id}" stands
// for one path segment holding the upstream's fax id; the other segments are literal. A pattern
// matches a request whose path ends with it, so an API mounted under a prefix ("/v1/api/fax/jobs")
// still matches; a trailing slash is ignored. When several patterns match, the one with the most
// literal segments wins.
//
//	send    a new fax is created; request carries callback_field; response: send_id or object
//	resend  an existing fax is sent again (needs {id}); same as send
//	cancel  a fax is cancelled (needs {id}); response: object, if any
//	status  one fax (needs {id}); response: object
//	list    several faxes; response: list_objects
//	file    the fax document (needs {id}); carries no fax object
//
// # Paths
//
// A path is a dotted list of object keys and array indexes into a JSON value: "job",
// "result.items", "failure.code", "destinations.0.number". Keys cannot contain dots. For
// object and list_objects the empty path is the body itself; an array found there yields one fax
// per element. Within a fax (fields) or a recipient (recipient) the empty path means "not
// mapped", "." means the value itself (e.g. recipients given as plain phone-number strings), and
// a path starting with "=" is a constant: "=sent" yields the string "sent" for every fax.
//
// Looking a path up yields nothing when a key is missing (the field stays absent: zero) and null when it runs into a null ("failure": null makes error_type,
// error_id and error_message null). Values are converted strictly: a value that is present but
// does not fit its field (a status outside the vocabulary, a time that does not parse with
// time_format, a non-integer page count, a number where an object belongs) makes the whole fax
// skipped, with an error that names the field, so that a wrong mapping is seen in the logs
// instead of producing half-empty webhooks. Integers may be JSON numbers or strings holding
// one; strings may be JSON strings or numbers (phone numbers sent unquoted); booleans may be
// true/false or the strings "true"/"false".
//
// # Ids
//
// faxhook identifies faxes by the v2.1 integer id. An upstream id that is an integer within
// int64 (a JSON number or a string such as "123") is used as is. Any other id ("job-7f3a", a
// UUID, an integer beyond int64) is replaced by DeriveID: its FNV-1a 64-bit hash masked to 53
// bits, so that the webhook's id survives JavaScript and other float64 JSON consumers. The
// upstream's own spelling stays available as Found.UpstreamID (ExtractWithIDs), for whoever must
// call the upstream about that fax again (Mapping.Path).
//
// With UpstreamIDTag set, every fax object with a status also carries the upstream's id as that
// tag, so that a webhook receiver finds it.
//
// # Other shapes
//
// SingleRecipient reads Fields.Recipients as the one recipient (an object, or "." for the fax
// object itself, or a plain value) instead of an array; FieldsByDirection gives faxes of one
// direction other paths; CostUnit "currency" reads a decimal price into cents;
// Recipient.PagesDone derives the page on the wire from a count of finished pages; SendObject
// reads send responses at another place than Object, e.g. a list of new faxes.
//
// # Vocabularies and times
//
// status_map, recipient_status_map, direction_map and error_type_map translate the upstream's
// words into v2.1's. A value missing from a map passes unchanged if it already is a v2.1 value
// (error types: any value passes), otherwise the fax is skipped with an error. In
// recipient_status_map the target "" stands for null, which is what Phaxio reports for a
// recipient that is still queued.
//
// Times are read with time_format and written as v2.1 writes them,
// "2006-01-02T15:04:05.000-07:00"; an empty string counts as null.
//
// # Example
//
// The simulated service in examples/otherfax answers GET /api/fax/jobs/{id} with
//
//	{"job":{"job_id":101000,"kind":"outbound","state":"ACTIVE","sandbox":true,"page_count":3,
//	 "submitted":1636043310.000,"finished":null,"caller_id":null,"remote":null,"line_number":null,
//	 "price_cents":0,"labels":{},"failure":null,
//	 "destinations":[{"number":"+15550000000","state":"TRANSMITTING","retries":0,"page":2,
//	   "finished":null,"line":null,"failure":null}]}}
//
// and is fronted by this mapping (the app's "mapping" object in Caddy's JSON config,
// apps.faxhook.mapping, or the file of the global option `faxhook { mapping FILE }`):
//
//	{
//	  "send": "POST /api/fax/jobs", "resend": "POST /api/fax/jobs/{id}/retry",
//	  "cancel": "POST /api/fax/jobs/{id}/cancel", "status": "GET /api/fax/jobs/{id}",
//	  "list": "GET /api/fax/jobs", "file": "GET /api/fax/jobs/{id}/document",
//	  "object": "job", "list_objects": "items", "send_id": "job_id",
//	  "fields": {"id": "job_id", "direction": "kind", "status": "state", "is_test": "sandbox",
//	    "num_pages": "page_count", "created_at": "submitted", "completed_at": "finished", ...,
//	    "recipients": "destinations"},
//	  "recipient": {"phone_number": "number", "status": "state", "retry_count": "retries",
//	    "current_page": "page", "bitrate": "line.bps", ...},
//	  "status_map": {"PENDING": "queued", "ACTIVE": "inprogress", "DELIVERED": "success", ...},
//	  "recipient_status_map": {"WAITING": "", "DIALING": "ringing", ...},
//	  "direction_map": {"outbound": "sent", "inbound": "received"},
//	  "time_format": "unix", "callback_field": "notify_url"
//	}
//
// (the complete mapping is otherfax.ExampleMappingJSON).

package profile

import (
	"errors"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/faxhook/caddy-faxhook/module/profile/fax"
)

// Route names, as Match returns them and Extract and Path accept them.
const (
	RouteSend   = "send"
	RouteResend = "resend"
	RouteCancel = "cancel"
	RouteStatus = "status"
	RouteList   = "list"
	RouteFile   = "file"
)

// Time formats with a name; any other TimeFormat is a Go time layout.
const (
	TimeRFC3339 = "rfc3339"
	TimeUnix    = "unix"
	TimeUnixMS  = "unix_ms"
)

// DefaultCallbackField is the request field that carries a fax's webhook URL when
// Mapping.CallbackField is empty (Phaxio's own name).
const DefaultCallbackField = "callback_url"

// V21TimeLayout is the layout in which v2.1 writes times (milliseconds and a numeric offset).
const V21TimeLayout = "2006-01-02T15:04:05.000-07:00"

// Mapping describes a fax service API that is not shaped like Phaxio's: its routes, where fax
// objects live in its response bodies, where each v2.1 field lives in such an object, and how its
// vocabulary translates to v2.1's. The zero value maps nothing; Validate says what is missing.
// A Mapping is read-only once in use and safe for concurrent use.
type Mapping struct {
	// Comment is free text that faxhook ignores: notes, and the sources a mapping was written
	// from (JSON has no comments).
	Comment []string `json:"comment,omitempty"`

	// Send is the route that creates (sends) a fax, e.g. "POST /api/fax/jobs". Its request
	// carries the fax's webhook URL in CallbackField; its response carries the new fax's id at
	// SendID, or the new fax object at Object when SendID is empty.
	Send string `json:"send,omitempty"`
	// Resend is the route that sends an existing fax again as a new fax, e.g.
	// "POST /api/fax/jobs/{id}/retry". Request and response are read as for Send.
	Resend string `json:"resend,omitempty"`
	// Cancel is the route that cancels a fax, e.g. "POST /api/fax/jobs/{id}/cancel". Its
	// response is read at Object; a response without a fax object there is ignored.
	Cancel string `json:"cancel,omitempty"`
	// Status is the route that returns one fax, e.g. "GET /api/fax/jobs/{id}". Its response is
	// read at Object.
	Status string `json:"status,omitempty"`
	// List is the route that returns several faxes, e.g. "GET /api/fax/jobs". Its response is
	// read at ListObjects.
	List string `json:"list,omitempty"`
	// File is the route that returns a fax's document, e.g. "GET /api/fax/jobs/{id}/document".
	// Its response carries no fax object; the route is named so that faxhook can fetch the
	// document.
	File string `json:"file,omitempty"`
	// FileURL, for an API whose documents have no route of their own, is the path within a fax
	// object (as the status route answers it) of the URL of the fax's document, e.g. Telnyx's or
	// SignalWire's "media_url". faxhook then fetches a received fax's PDF in two steps: the
	// status route, then that URL (absolute, or relative to the API's host). Not together with
	// File; needs Status.
	FileURL string `json:"file_url,omitempty"`
	// FileRefresh, with FileURL, is the route that makes the upstream issue a fresh document
	// URL when the one in the fax object has expired, e.g. Telnyx's
	// "POST /faxes/{id}/actions/refresh". When the document URL is refused or gone (401, 403,
	// 404, 410), faxhook calls it once, reads the fax again and fetches the new URL; without it
	// (or when the new URL is refused too) the webhook goes without the PDF. It is no fax route:
	// a client's request to it passes through untouched.
	FileRefresh string `json:"file_refresh,omitempty"`
	// PathSuffix is a suffix that the API accepts on the last segment of its paths, such as
	// ".json" on Twilio-style routes (POST …/Faxes.json, GET …/Faxes/{sid}.json). A request
	// path whose last segment ends with it matches the routes as if it were not there (so
	// …/Faxes and …/Faxes.json both match "POST /Faxes"), and faxhook's own requests (Path)
	// carry it.
	PathSuffix string `json:"path_suffix,omitempty"`

	// Object is the path of the fax object in responses of the status, cancel and (without
	// SendID) send and resend routes, e.g. "job" or "data"; empty for the body itself. An array
	// found there yields one fax per element.
	Object string `json:"object,omitempty"`
	// ListObjects is the path of the array of fax objects in responses of the list route, e.g.
	// "items" or "result.faxes"; empty for the body itself.
	ListObjects string `json:"list_objects,omitempty"`
	// SendID is the path of the new fax's id in responses of the send and resend routes, e.g.
	// "job_id" or "data.id". Empty if those responses carry the whole fax object at Object.
	SendID string `json:"send_id,omitempty"`
	// SendObject is the path of the new fax object, or of an array of new fax objects (one per
	// recipient, e.g. "faxes" for {"faxes":[…]}), in responses of the send and resend routes
	// when SendID is empty; empty: Object. Use it when the send route answers in another shape
	// than the status route. A response with nothing at SendObject is read at Object, for an
	// API that answers a list for several recipients and the fax itself for one.
	SendObject string `json:"send_object,omitempty"`

	// Fields says where each v2.1 field lives in a fax object. ID and Status are required.
	Fields FieldMap `json:"fields"`
	// Recipient says where each v2.1 recipient field lives in one element of the array at
	// Fields.Recipients. PhoneNumber is required when Fields.Recipients is set.
	Recipient RecipientFieldMap `json:"recipient,omitempty"`
	// SingleRecipient says that the value at Fields.Recipients is the fax's one recipient, not
	// an array of them: an object read with Recipient (use "." for the fax object itself, when
	// the API has a fax-level "to" and status), or a plain value such as a phone number string
	// (then Recipient.PhoneNumber is "."). A null or missing value yields no recipient.
	SingleRecipient bool `json:"single_recipient,omitempty"`
	// FieldsByDirection overrides Fields for the faxes of one direction: its keys are the v2.1
	// directions "sent" and "received" (after DirectionMap), its values field maps whose
	// non-empty paths replace those of Fields for faxes of that direction; the path "-" unmaps
	// a field for that direction. For example {"received": {"from_number": "from", "to_number":
	// "to", "recipients": "-"}} reads from_number and to_number on received faxes only, and
	// gives them no recipients. Fields.ID and Fields.Direction cannot be overridden: the
	// direction decides which map applies.
	FieldsByDirection map[string]FieldMap `json:"fields_by_direction,omitempty"`
	// UpstreamIDTag, when set, is the name of a tag that carries the fax's id as the upstream
	// spells it (e.g. "upstream_id": a Sinch id such as "01HX…", whose v2.1 id is a hash, see
	// DeriveID), so that a webhook receiver finds it in fax.tags without leaving the v2.1 fax
	// object. It is added to every fax object that has a status, beside the tags at Fields.Tags
	// (and replaces an upstream tag of the same name).
	UpstreamIDTag string `json:"upstream_id_tag,omitempty"`
	// CostUnit is how the upstream writes Fields.Cost: "cents" (the default: an integer number
	// of cents, as v2.1) or "currency" (a decimal amount of the currency's main unit, such as
	// the string "0.07" or the number 0.07, converted exactly to integer cents, half a cent
	// rounded away from zero).
	CostUnit string `json:"cost_unit,omitempty"`

	// StatusMap translates the upstream's fax statuses into v2.1's (queued, pendingbatch,
	// inprogress, success, failure, partialsuccess), e.g. {"DELIVERED": "success"}. A status not
	// in the map must already be a v2.1 fax status, else the fax is skipped.
	StatusMap map[string]string `json:"status_map,omitempty"`
	// RecipientStatusMap translates the upstream's recipient statuses into v2.1's (queued,
	// pendingbatch, inprogress, ringing, callactive, willretry, success, failure); the target ""
	// means null (not started yet). A status not in the map must already be a v2.1 recipient
	// status, else the fax is skipped.
	RecipientStatusMap map[string]string `json:"recipient_status_map,omitempty"`
	// DirectionMap translates the upstream's directions into v2.1's (sent, received), e.g.
	// {"outbound": "sent", "inbound": "received"}. A direction not in the map must already be
	// sent or received, else the fax is skipped.
	DirectionMap map[string]string `json:"direction_map,omitempty"`
	// ErrorTypeMap translates the upstream's error types (of faxes and recipients) into v2.1's
	// (documentConversionError, lineError, faxError, fatalError, generalError); the target ""
	// means null, so that an API whose only failure detail is its status ("busy",
	// "no-answer") can map Fields.ErrorType to the status and the other statuses to "". Error
	// types not in the map pass unchanged.
	ErrorTypeMap map[string]string `json:"error_type_map,omitempty"`

	// CompletedAtFinal reads Fields.CompletedAt only for faxes whose status (after StatusMap)
	// is final (success, failure, partialsuccess) and makes it null for the others: for an API
	// that has no completion time but a time of the last change ("updated_at", "date_updated"),
	// which is the completion time once the fax is done.
	CompletedAtFinal bool `json:"completed_at_final,omitempty"`

	// TimeFormat is how the upstream writes times: "rfc3339" (the default; fractional seconds
	// optional), "unix" (seconds since 1970, with an optional decimal fraction, as a number or a
	// string), "unix_ms" (milliseconds since 1970), or a Go time layout such as
	// "2006-01-02 15:04:05". Times are always written in the v2.1 form
	// "2006-01-02T15:04:05.000-07:00".
	TimeFormat string `json:"time_format,omitempty"`
	// TimeZone is the zone in which times are written, and in which a layout without a zone is
	// read: "UTC", "Local", an IANA name such as "America/Chicago", or a fixed offset such as
	// "-05:00". Default: the offset the upstream wrote, or UTC for unix times and layouts
	// without a zone.
	TimeZone string `json:"time_zone,omitempty"`

	// ListReceived is the query string (without "?") that faxhook's poller adds to the List
	// route to find received faxes, e.g. "kind=inbound&limit=100". Empty: the poller lists the
	// List route as is, and finds received faxes among the others.
	ListReceived string `json:"list_received,omitempty"`

	// CallbackField is the name of the field of send and resend requests that carries the fax's
	// webhook URL, in a form or (as a dotted path) in a JSON body. Default "callback_url".
	CallbackField string `json:"callback_field,omitempty"`
}

// FieldMap holds the path of each v2.1 fax field within one fax object of the upstream. An empty
// path leaves the field absent; "." is the object itself; "=TEXT" is the constant TEXT.
type FieldMap struct {
	// ID is the path of the fax's id (required). Non-integer ids are hashed (see DeriveID).
	ID string `json:"id,omitempty"`
	// Direction is the path of the direction, translated by DirectionMap. Use "=sent" for an API
	// that only sends.
	Direction string `json:"direction,omitempty"`
	// Status is the path of the fax status, translated by StatusMap (required). A fax whose
	// status is missing or null is taken as an id only (like a send response), not as a state.
	Status string `json:"status,omitempty"`
	// IsTest is the path of a boolean telling whether the fax was created in test mode.
	IsTest string `json:"is_test,omitempty"`
	// NumPages is the path of the page count (integer).
	NumPages string `json:"num_pages,omitempty"`
	// CreatedAt is the path of the creation time, read with TimeFormat.
	CreatedAt string `json:"created_at,omitempty"`
	// CompletedAt is the path of the completion time, read with TimeFormat; null while in
	// flight.
	CompletedAt string `json:"completed_at,omitempty"`
	// CallerID is the path of the caller id a sent fax used.
	CallerID string `json:"caller_id,omitempty"`
	// FromNumber is the path of the sender's number of a received fax.
	FromNumber string `json:"from_number,omitempty"`
	// ToNumber is the path of the number that received a received fax.
	ToNumber string `json:"to_number,omitempty"`
	// CallerName is the path of the sender's name of a received fax.
	CallerName string `json:"caller_name,omitempty"`
	// Cost is the path of the cost in cents (integer).
	Cost string `json:"cost,omitempty"`
	// Tags is the path of an object of tag names to values (strings, numbers or booleans).
	Tags string `json:"tags,omitempty"`
	// ErrorType is the path of the fax's error type, translated by ErrorTypeMap.
	ErrorType string `json:"error_type,omitempty"`
	// ErrorID is the path of the fax's numeric error code.
	ErrorID string `json:"error_id,omitempty"`
	// ErrorMessage is the path of the fax's error text.
	ErrorMessage string `json:"error_message,omitempty"`
	// Recipients is the path of the array of recipients of a sent fax; its elements are read
	// with Mapping.Recipient.
	Recipients string `json:"recipients,omitempty"`
}

// RecipientFieldMap holds the path of each v2.1 recipient field within one element of the
// recipients array. An empty path leaves the field absent (zero or null); "." is the element
// itself; "=TEXT" is the constant TEXT.
type RecipientFieldMap struct {
	// PhoneNumber is the path of the recipient's number (required with recipients); "." when
	// the recipients are plain strings.
	PhoneNumber string `json:"phone_number,omitempty"`
	// Status is the path of the recipient status, translated by RecipientStatusMap.
	Status string `json:"status,omitempty"`
	// RetryCount is the path of the number of retries so far (integer; the first attempt is
	// not a retry).
	RetryCount string `json:"retry_count,omitempty"`
	// CompletedAt is the path of the time this recipient finished, read with TimeFormat.
	CompletedAt string `json:"completed_at,omitempty"`
	// CurrentPage is the path of the 1-based page now (or last) on the wire to this recipient,
	// 0 before the first page. v2.1 has no such field; faxhook uses it for transmitting_page
	// events and never forwards it.
	CurrentPage string `json:"current_page,omitempty"`
	// PagesDone is the path of the number of pages fully sent to this recipient (e.g. Sinch's
	// pagesSentSuccessfully), an alternative to CurrentPage for an API that counts finished
	// pages: faxhook takes page PagesDone+1 as being on the wire while the recipient's status
	// is inprogress or callactive and not every page (num_pages, when known) is done, else page
	// PagesDone. So a transmitting_page event for page 1 is sent once the fax is in progress,
	// and one for page n+1 once page n finished; the last page's event comes with success (or
	// with the last finished page). Not both of current_page and pages_done may be set.
	PagesDone string `json:"pages_done,omitempty"`
	// Bitrate is the path of the transmission speed in bits per second.
	Bitrate string `json:"bitrate,omitempty"`
	// Resolution is the path of the horizontal resolution in pixels per metre.
	Resolution string `json:"resolution,omitempty"`
	// ErrorType is the path of the recipient's error type, translated by ErrorTypeMap.
	ErrorType string `json:"error_type,omitempty"`
	// ErrorID is the path of the recipient's numeric error code.
	ErrorID string `json:"error_id,omitempty"`
	// ErrorMessage is the path of the recipient's error text.
	ErrorMessage string `json:"error_message,omitempty"`
}

// v2.1 vocabularies.
var (
	faxStatuses = []string{
		fax.StatusQueued, fax.StatusPendingBatch, fax.StatusInProgress,
		fax.StatusSuccess, fax.StatusFailure, fax.StatusPartialSuccess,
	}
	recipientStatuses = []string{
		fax.StatusQueued, fax.StatusPendingBatch, fax.StatusInProgress, fax.RecipientRinging,
		fax.RecipientCallActive, fax.RecipientWillRetry, fax.StatusSuccess, fax.StatusFailure,
	}
	directions = []string{fax.DirectionSent, fax.DirectionReceived}
	errorTypes = []string{
		"documentConversionError", "lineError", "faxError", "fatalError", "generalError",
	}
)

// routeDef is one configured route.
type routeDef struct {
	name, json string // route name and the JSON name of its Mapping field
	pattern    string
	needsID    bool
}

func (m *Mapping) routes() []routeDef {
	return []routeDef{
		{RouteSend, "send", m.Send, false},
		{RouteResend, "resend", m.Resend, true},
		{RouteCancel, "cancel", m.Cancel, true},
		{RouteStatus, "status", m.Status, true},
		{RouteList, "list", m.List, false},
		{RouteFile, "file", m.File, true},
	}
}

// pattern is a parsed route pattern.
type pattern struct {
	method   string
	segs     []string // path segments; "{id}" for the id
	idAt     int      // index of "{id}" in segs, -1 if none
	literals int
}

const idPlaceholder = "{id}"

// parsePattern parses "METHOD /a/b/{id}".
func parsePattern(s string) (pattern, error) {
	method, p, ok := strings.Cut(strings.TrimSpace(s), " ")
	p = strings.TrimSpace(p)
	if !ok || method == "" || p == "" {
		return pattern{}, fmt.Errorf("%q is not \"METHOD /path\"", s)
	}
	for _, c := range method {
		if c < 'A' || c > 'Z' {
			return pattern{}, fmt.Errorf("method %q is not an upper-case HTTP method", method)
		}
	}
	if !strings.HasPrefix(p, "/") {
		return pattern{}, fmt.Errorf("path %q does not start with /", p)
	}
	pt := pattern{method: method, idAt: -1}
	trimmed := strings.Trim(p, "/")
	if trimmed == "" {
		return pattern{}, fmt.Errorf("path %q has no segments", p)
	}
	pt.segs = strings.Split(trimmed, "/")
	for i, seg := range pt.segs {
		switch {
		case seg == "":
			return pattern{}, fmt.Errorf("path %q has an empty segment", p)
		case seg == idPlaceholder:
			if pt.idAt >= 0 {
				return pattern{}, fmt.Errorf("path %q has more than one %s", p, idPlaceholder)
			}
			pt.idAt = i
		case strings.ContainsAny(seg, "{}"):
			return pattern{}, fmt.Errorf("path %q: segment %q: the only placeholder is a whole %s segment", p, seg, idPlaceholder)
		default:
			pt.literals++
		}
	}
	return pt, nil
}

// match reports whether the request path ends with the pattern and returns the id segment.
func (pt pattern) match(method string, segs []string) (id string, ok bool) {
	if method != pt.method || len(segs) < len(pt.segs) {
		return "", false
	}
	tail := segs[len(segs)-len(pt.segs):]
	for i, seg := range pt.segs {
		if i == pt.idAt {
			if tail[i] == "" {
				return "", false
			}
			id = tail[i]
			continue
		}
		if tail[i] != seg {
			return "", false
		}
	}
	return id, true
}

// Validate checks the mapping. Its error lists every problem, one per line, each naming the
// field by its JSON name ("mapping: fields.status: required", "mapping: recipient_status_map:
// …"); nil means the mapping is usable.
func (m *Mapping) Validate() error {
	var errs []error
	bad := func(field string, err error) {
		errs = append(errs, fmt.Errorf("mapping: %s: %w", field, err))
	}
	seen := map[string]string{}
	anyRoute := false
	for _, r := range m.routes() {
		if r.pattern == "" {
			continue
		}
		anyRoute = true
		pt, err := parsePattern(r.pattern)
		if err != nil {
			bad(r.json, err)
			continue
		}
		if r.needsID && pt.idAt < 0 {
			bad(r.json, fmt.Errorf("%q has no %s segment", r.pattern, idPlaceholder))
		}
		key := pt.method + " /" + strings.Join(pt.segs, "/")
		if other, dup := seen[key]; dup {
			bad(r.json, fmt.Errorf("%q is the same route as %s", r.pattern, other))
		}
		seen[key] = r.json
	}
	if !anyRoute {
		errs = append(errs, errors.New("mapping: no route: set at least one of send, resend, cancel, status, list, file"))
	}
	if m.ListReceived != "" {
		if _, err := url.ParseQuery(m.ListReceived); err != nil || strings.HasPrefix(m.ListReceived, "?") {
			bad("list_received", fmt.Errorf("%q is not a query string (name=value&…, without ?)", m.ListReceived))
		}
		if m.List == "" {
			bad("list_received", errors.New("needs the list route"))
		}
	}
	for _, p := range []struct{ name, path string }{
		{"object", m.Object}, {"list_objects", m.ListObjects}, {"send_id", m.SendID},
		{"send_object", m.SendObject},
	} {
		if p.path == "" {
			continue
		}
		if _, err := parsePath(p.path, false); err != nil {
			bad(p.name, err)
		}
	}
	if m.Fields.ID == "" {
		bad("fields.id", errors.New("required"))
	}
	if m.Fields.Status == "" {
		bad("fields.status", errors.New("required"))
	}
	for _, f := range m.allFieldPaths() {
		if f.path == "" || f.path == unmapped && f.override {
			continue
		}
		p, err := parsePath(f.path, true)
		if err != nil {
			bad(f.name, err)
			continue
		}
		if p.isConst && f.container {
			bad(f.name, fmt.Errorf("%q: a constant cannot stand for an object or array", f.path))
		}
	}
	if m.Fields.Recipients != "" && m.Recipient.PhoneNumber == "" {
		bad("recipient.phone_number", errors.New("required when fields.recipients is set"))
	}
	if m.SendObject != "" && m.SendID != "" {
		bad("send_object", errors.New("cannot be set together with send_id (send responses are read at send_id)"))
	}
	if m.SingleRecipient && m.Fields.Recipients == "" {
		anyDir := false
		for _, fm := range m.FieldsByDirection {
			anyDir = anyDir || fm.Recipients != "" && fm.Recipients != unmapped
		}
		if !anyDir {
			bad("single_recipient", errors.New("needs fields.recipients (\".\" for the fax object itself)"))
		}
	}
	if m.Recipient.PagesDone != "" && m.Recipient.CurrentPage != "" {
		bad("recipient.pages_done", errors.New("cannot be set together with recipient.current_page"))
	}
	for dir, fm := range m.FieldsByDirection {
		name := "fields_by_direction." + dir
		if !slices.Contains(directions, dir) {
			bad(name, fmt.Errorf("%q is not a v2.1 direction (sent, received)", dir))
		}
		if fm.ID != "" {
			bad(name+".id", errors.New("cannot differ by direction"))
		}
		if fm.Direction != "" {
			bad(name+".direction", errors.New("cannot differ by direction"))
		}
		if fm.Recipients != "" && fm.Recipients != unmapped && m.Recipient.PhoneNumber == "" {
			bad("recipient.phone_number", fmt.Errorf("required when %s.recipients is set", name))
		}
	}
	switch m.CostUnit {
	case "", CostCents, CostCurrency:
	default:
		bad("cost_unit", fmt.Errorf("%q is neither %s nor %s", m.CostUnit, CostCents, CostCurrency))
	}
	if m.UpstreamIDTag != "" && strings.TrimSpace(m.UpstreamIDTag) != m.UpstreamIDTag {
		bad("upstream_id_tag", fmt.Errorf("%q has surrounding white space", m.UpstreamIDTag))
	}
	checkVocab := func(name string, vm map[string]string, allowed []string, allowNull bool) {
		for k, v := range vm {
			if v == "" && allowNull || slices.Contains(allowed, v) {
				continue
			}
			bad(name, fmt.Errorf("%q maps to %q, which is not one of %s", k, v, strings.Join(allowed, ", ")))
		}
	}
	checkVocab("status_map", m.StatusMap, faxStatuses, false)
	checkVocab("recipient_status_map", m.RecipientStatusMap, recipientStatuses, true)
	checkVocab("direction_map", m.DirectionMap, directions, false)
	checkVocab("error_type_map", m.ErrorTypeMap, errorTypes, true)
	if err := checkTimeFormat(m.TimeFormat); err != nil {
		bad("time_format", err)
	}
	if _, err := loadZone(m.TimeZone); err != nil {
		bad("time_zone", err)
	}
	if m.FileURL != "" {
		if _, err := parsePath(m.FileURL, true); err != nil {
			bad("file_url", err)
		} else if strings.HasPrefix(m.FileURL, "=") {
			bad("file_url", fmt.Errorf("%q: the document's URL cannot be a constant", m.FileURL))
		}
		if m.File != "" {
			bad("file_url", errors.New("cannot be set together with file (the file route answers the document itself)"))
		}
		if m.Status == "" {
			bad("file_url", errors.New("needs the status route (its answer names the document's URL)"))
		}
	}
	if m.FileRefresh != "" {
		if pt, err := parsePattern(m.FileRefresh); err != nil {
			bad("file_refresh", err)
		} else if pt.idAt < 0 {
			bad("file_refresh", fmt.Errorf("%q has no {id} segment", m.FileRefresh))
		}
		if m.FileURL == "" {
			bad("file_refresh", errors.New("needs file_url (it refreshes the document URL found there)"))
		}
	}
	if m.PathSuffix != "" && (strings.ContainsAny(m.PathSuffix, "/?#{} \t") || m.PathSuffix == ".") {
		bad("path_suffix", fmt.Errorf("%q is not a suffix of a path segment (such as .json)", m.PathSuffix))
	}
	if strings.TrimSpace(m.CallbackField) != m.CallbackField {
		bad("callback_field", fmt.Errorf("%q has surrounding white space", m.CallbackField))
	}
	// Report in a stable order: the map iteration above is random.
	slices.SortStableFunc(errs, func(a, b error) int { return strings.Compare(a.Error(), b.Error()) })
	return errors.Join(errs...)
}

// fieldPath is one configured field path with its JSON name.
type fieldPath struct {
	name, path string
	container  bool // must point at an object or array
	override   bool // in fields_by_direction, where "-" unmaps the field
}

// unmapped is the path that, in FieldsByDirection, leaves a field of Fields unmapped.
const unmapped = "-"

// Cost units (Mapping.CostUnit).
const (
	CostCents    = "cents"
	CostCurrency = "currency"
)

// faxFieldPaths lists the paths of a field map, named prefix+JSON name.
func faxFieldPaths(prefix string, f *FieldMap, override bool) []fieldPath {
	return []fieldPath{
		{prefix + "id", f.ID, false, override}, {prefix + "direction", f.Direction, false, override},
		{prefix + "status", f.Status, false, override}, {prefix + "is_test", f.IsTest, false, override},
		{prefix + "num_pages", f.NumPages, false, override}, {prefix + "created_at", f.CreatedAt, false, override},
		{prefix + "completed_at", f.CompletedAt, false, override}, {prefix + "caller_id", f.CallerID, false, override},
		{prefix + "from_number", f.FromNumber, false, override}, {prefix + "to_number", f.ToNumber, false, override},
		{prefix + "caller_name", f.CallerName, false, override}, {prefix + "cost", f.Cost, false, override},
		{prefix + "tags", f.Tags, true, override}, {prefix + "error_type", f.ErrorType, false, override},
		{prefix + "error_id", f.ErrorID, false, override}, {prefix + "error_message", f.ErrorMessage, false, override},
		{prefix + "recipients", f.Recipients, true, override},
	}
}

// fieldPaths lists the paths of Fields and Recipient.
func (m *Mapping) fieldPaths() []fieldPath {
	r := &m.Recipient
	return append(faxFieldPaths("fields.", &m.Fields, false), []fieldPath{
		{"recipient.phone_number", r.PhoneNumber, false, false}, {"recipient.status", r.Status, false, false},
		{"recipient.retry_count", r.RetryCount, false, false}, {"recipient.completed_at", r.CompletedAt, false, false},
		{"recipient.current_page", r.CurrentPage, false, false}, {"recipient.pages_done", r.PagesDone, false, false},
		{"recipient.bitrate", r.Bitrate, false, false},
		{"recipient.resolution", r.Resolution, false, false}, {"recipient.error_type", r.ErrorType, false, false},
		{"recipient.error_id", r.ErrorID, false, false}, {"recipient.error_message", r.ErrorMessage, false, false},
	}...)
}

// allFieldPaths is fieldPaths with those of FieldsByDirection, in a stable order.
func (m *Mapping) allFieldPaths() []fieldPath {
	out := m.fieldPaths()
	for _, dir := range slices.Sorted(maps.Keys(m.FieldsByDirection)) {
		fm := m.FieldsByDirection[dir]
		out = append(out, faxFieldPaths("fields_by_direction."+dir+".", &fm, true)...)
	}
	return out
}

// checkTimeFormat accepts the named formats and Go layouts that contain layout elements.
func checkTimeFormat(format string) error {
	switch format {
	case "", TimeRFC3339, TimeUnix, TimeUnixMS:
		return nil
	}
	ref := time.Date(2009, 11, 10, 23, 4, 5, 0, time.UTC)
	if ref.Format(format) == format {
		return fmt.Errorf("%q is neither rfc3339, unix, unix_ms nor a Go time layout (e.g. \"2006-01-02 15:04:05\")", format)
	}
	return nil
}

// zones caches time.LoadLocation, which reads the zone database on every call.
var zones sync.Map

// loadZone resolves Mapping.TimeZone; nil means "keep the upstream's offset".
func loadZone(name string) (*time.Location, error) {
	switch name {
	case "":
		return nil, nil
	case "UTC":
		return time.UTC, nil
	case "Local":
		return time.Local, nil
	}
	if len(name) == 6 && (name[0] == '+' || name[0] == '-') && name[3] == ':' {
		t, err := time.Parse("-07:00", name)
		if err != nil {
			return nil, fmt.Errorf("offset %q: %w", name, err)
		}
		_, off := t.Zone()
		return time.FixedZone(name, off), nil
	}
	if loc, ok := zones.Load(name); ok {
		return loc.(*time.Location), nil
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, fmt.Errorf("loading zone %q: %w", name, err)
	}
	zones.Store(name, loc)
	return loc, nil
}

// Callback returns the name of the request field that carries a fax's webhook URL:
// CallbackField, or DefaultCallbackField.
func (m *Mapping) Callback() string {
	if m.CallbackField == "" {
		return DefaultCallbackField
	}
	return m.CallbackField
}

// Match classifies a request by its method and (unescaped) URL path. It returns the route name
// (RouteSend, …) and, for routes with an {id} segment, the upstream's fax id as it appears in
// the path. ok is false when no configured route matches. Patterns that do not parse never
// match; Validate reports them.
func (m *Mapping) Match(method, path string) (route, id string, ok bool) {
	segs := strings.Split(strings.Trim(path, "/"), "/")
	if last := segs[len(segs)-1]; m.PathSuffix != "" && len(last) > len(m.PathSuffix) && strings.HasSuffix(last, m.PathSuffix) {
		segs[len(segs)-1] = strings.TrimSuffix(last, m.PathSuffix)
	}
	best := -1
	for _, r := range m.routes() {
		if r.pattern == "" {
			continue
		}
		pt, err := parsePattern(r.pattern)
		if err != nil {
			continue
		}
		if r.needsID && pt.idAt < 0 {
			continue
		}
		got, matched := pt.match(method, segs)
		if !matched || pt.literals <= best {
			continue
		}
		best, route, id, ok = pt.literals, r.name, got, true
	}
	return route, id, ok
}

// Path returns the method and path of a route for the upstream's fax id (escaped into the {id}
// segment), for faxhook's own calls to the upstream such as polling a fax's status. The path is
// the pattern's, with PathSuffix: if the API lives under a prefix the patterns leave out,
// prepend it.
func (m *Mapping) Path(route, upstreamID string) (method, path string, err error) {
	for _, r := range m.routes() {
		if r.name != route {
			continue
		}
		if r.pattern == "" {
			return "", "", fmt.Errorf("mapping: route %s is not configured", route)
		}
		return m.fill(r.json, r.pattern, upstreamID)
	}
	return "", "", fmt.Errorf("mapping: unknown route %q", route)
}

// fill returns the method and path of the pattern (the mapping's field name) for the
// upstream's fax id, with PathSuffix.
func (m *Mapping) fill(name, pattern, upstreamID string) (method, path string, err error) {
	pt, err := parsePattern(pattern)
	if err != nil {
		return "", "", fmt.Errorf("mapping: %s: %w", name, err)
	}
	segs := slices.Clone(pt.segs)
	if pt.idAt >= 0 {
		if upstreamID == "" {
			return "", "", fmt.Errorf("mapping: %s needs a fax id", name)
		}
		segs[pt.idAt] = url.PathEscape(upstreamID)
	}
	return pt.method, "/" + strings.Join(segs, "/") + m.PathSuffix, nil
}
