package profile

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/faxhook/caddy-faxhook/module/profile/fax"
)

// The tests of this file cover what the Telnyx and Twilio-compatible (SignalWire) fax APIs
// need beyond issue 18's gaps: a document named by URL in the fax object (file_url), routes
// with an optional ".json" (path_suffix), a completion time that is only the last change's
// time (completed_at_final), and an error type read from the status (error_type_map to "").

// twilioLike is a mapping of a Twilio-Fax-shaped API, as an operator would write it.
const twilioLike = `{
  "send": "POST /Faxes", "status": "GET /Faxes/{id}", "list": "GET /Faxes", "path_suffix": ".json",
  "list_objects": "faxes", "file_url": "media_url", "single_recipient": true, "completed_at_final": true,
  "fields": {"id": "sid", "direction": "direction", "status": "status", "completed_at": "date_updated",
    "error_type": "status", "recipients": "."},
  "recipient": {"phone_number": "to", "status": "status", "error_type": "status"},
  "status_map": {"queued": "queued", "sending": "inprogress", "delivered": "success", "busy": "failure"},
  "recipient_status_map": {"queued": "", "sending": "inprogress", "delivered": "success", "busy": "failure"},
  "direction_map": {"outbound": "sent", "inbound": "received"},
  "error_type_map": {"busy": "lineError", "queued": "", "sending": "", "delivered": ""}
}`

// A route matches with and without the suffix, the id does not keep it, and faxhook's own
// requests carry it.
func TestPathSuffix(t *testing.T) {
	m := mappingOf(t, twilioLike)
	for _, c := range []struct{ method, path, route, id string }{
		{"POST", "/api/laml/2010-04-01/Accounts/AC1/Faxes.json", RouteSend, ""},
		{"POST", "/v1/Faxes", RouteSend, ""},
		{"GET", "/api/laml/2010-04-01/Accounts/AC1/Faxes/FX9.json", RouteStatus, "FX9"},
		{"GET", "/v1/Faxes/FX9", RouteStatus, "FX9"},
		{"GET", "/api/laml/2010-04-01/Accounts/AC1/Faxes.json", RouteList, ""},
	} {
		route, id, ok := m.Match(c.method, c.path)
		if !ok || route != c.route || id != c.id {
			t.Errorf("%s %s: %q %q %v, want %q %q", c.method, c.path, route, id, ok, c.route, c.id)
		}
	}
	if _, id, _ := m.Match("GET", "/v1/Faxes/.json"); id != ".json" {
		t.Errorf("a segment that is only the suffix is not stripped: id %q", id)
	}
	p, _ := m.Profile()
	if req, err := p.StatusRequest("FX9"); err != nil || req.Path != "/Faxes/FX9.json" {
		t.Errorf("status request: %+v %v", req, err)
	}
	if req, err := p.ReceivedRequest(time.Time{}); err != nil || req.Path != "/Faxes.json" {
		t.Errorf("received request: %+v %v", req, err)
	}
}

// With file_url, the file request is the status request, and the profile reads the document's
// URL from its answer; a fax without one (yet) is an error, not an empty URL.
func TestFileURL(t *testing.T) {
	m := mappingOf(t, twilioLike)
	p, err := m.Profile()
	if err != nil {
		t.Fatal(err)
	}
	req, err := p.FileRequest("FX9")
	if err != nil || req.Method != "GET" || req.Path != "/Faxes/FX9.json" {
		t.Fatalf("file request: %+v %v", req, err)
	}
	loc, ok := p.(FileLocator)
	if !ok {
		t.Fatal("a mapping with file_url is no FileLocator")
	}
	u, err := loc.FileURL([]byte(`{"sid":"FX9","status":"received","media_url":"https://media.example/fx9.pdf?sig=1"}`))
	if err != nil || u != "https://media.example/fx9.pdf?sig=1" {
		t.Errorf("file URL: %q %v", u, err)
	}
	for _, body := range []string{`{"sid":"FX9","media_url":null}`, `{"sid":"FX9"}`, `{"sid":"FX9","media_url":7}`, `nope`} {
		if u, err := loc.FileURL([]byte(body)); err == nil {
			t.Errorf("%s: URL %q without an error", body, u)
		}
	}
	// Under an envelope (Telnyx's {"data": …}), the URL is read in the object at object.
	tm, err := Shipped("telnyx")
	if err != nil {
		t.Fatal(err)
	}
	if u, err := tm.FileURLOf([]byte(`{"data":{"id":"u1","media_url":"https://s3.example/u1.pdf"}}`)); err != nil || u != "https://s3.example/u1.pdf" {
		t.Errorf("telnyx file URL: %q %v", u, err)
	}
	// Without file_url a mapping's profile is no FileLocator: its file route answers the PDF.
	if _, ok := mustProfile(t, mappingOf(t, sinchLike)).(FileLocator); ok {
		t.Error("a mapping with a file route is a FileLocator")
	}
}

func mustProfile(t *testing.T, m *Mapping) Profile {
	t.Helper()
	p, err := m.Profile()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// completed_at_final: the time of the last change is the completion time of a finished fax
// only; an error type read from the status is null unless the status names a failure.
func TestCompletedAtFinalAndErrorTypeFromStatus(t *testing.T) {
	m := mappingOf(t, twilioLike)
	o := extractOne(t, m, RouteStatus, `{"sid":"FX1","direction":"outbound","status":"sending","to":"+15550000001",
	  "date_updated":"2026-12-05T03:00:05Z"}`).Object
	if o.Fax.CompletedAt != nil || o.Fax.ErrorType != nil || o.Fax.Recipients[0].ErrorType != nil ||
		o.Fax.Status != fax.StatusInProgress {
		t.Errorf("a fax in flight: %+v", o.Fax)
	}
	o = extractOne(t, m, RouteStatus, `{"sid":"FX1","direction":"outbound","status":"busy","to":"+15550000001",
	  "date_updated":"2026-12-05T03:00:09Z"}`).Object
	if o.Fax.CompletedAt == nil || *o.Fax.CompletedAt != "2026-12-05T03:00:09.000+00:00" ||
		o.Fax.ErrorType == nil || *o.Fax.ErrorType != "lineError" || o.Fax.Status != fax.StatusFailure ||
		*o.Fax.Recipients[0].ErrorType != "lineError" {
		t.Errorf("a busy fax: %+v", o.Fax)
	}
	o = extractOne(t, m, RouteStatus, `{"sid":"FX1","direction":"outbound","status":"delivered","to":"+15550000001",
	  "date_updated":"2026-12-05T03:00:09Z"}`).Object
	if o.Fax.CompletedAt == nil || o.Fax.ErrorType != nil {
		t.Errorf("a delivered fax: %+v", o.Fax)
	}
}

// Validate names each new field's problems.
func TestURLFaxValidate(t *testing.T) {
	var m Mapping
	if err := json.Unmarshal([]byte(`{"list":"GET /f","file":"GET /f/{id}/pdf","file_url":"a..b","path_suffix":"/x",
	  "fields":{"id":"id","status":"s"},"error_type_map":{"x":"busy","y":""}}`), &m); err != nil {
		t.Fatal(err)
	}
	err := m.Validate()
	if err == nil {
		t.Fatal("Validate accepted a bad mapping")
	}
	for _, want := range []string{
		`mapping: file_url: path "a..b" has an empty segment`,
		"mapping: file_url: cannot be set together with file",
		"mapping: file_url: needs the status route",
		`mapping: path_suffix: "/x" is not a suffix of a path segment`,
		`mapping: error_type_map: "x" maps to "busy"`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Validate's error lacks %q:\n%v", want, err)
		}
	}
	if strings.Contains(err.Error(), `"y"`) {
		t.Errorf("error_type_map to \"\" (null) refused: %v", err)
	}
	m = Mapping{Status: "GET /f/{id}", FileURL: "=https://x", Fields: FieldMap{ID: "id", Status: "s"}}
	if err := m.Validate(); err == nil || !strings.Contains(err.Error(), "mapping: file_url: \"=https://x\": the document's URL cannot be a constant") {
		t.Errorf("a constant file_url: %v", err)
	}
	m = Mapping{Status: "GET /f/{id}", FileRefresh: "POST /f/refresh", Fields: FieldMap{ID: "id", Status: "s"}}
	err = m.Validate()
	for _, want := range []string{`mapping: file_refresh: "POST /f/refresh" has no {id} segment`, "mapping: file_refresh: needs file_url"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate's error lacks %q: %v", want, err)
		}
	}
}

// file_refresh is the request that renews an expired document URL: the fax's id in its path,
// with path_suffix, and none without it.
func TestFileRefreshRequest(t *testing.T) {
	m, err := Shipped("telnyx")
	if err != nil {
		t.Fatal(err)
	}
	p, _ := m.Profile()
	req, ok := p.(FileLocator).RefreshRequest("u 1")
	if !ok || req.Method != "POST" || req.Path != "/faxes/u%201/actions/refresh" {
		t.Errorf("telnyx refresh request: %+v %v", req, ok)
	}
	m, _ = Shipped("twilio_fax")
	p, _ = m.Profile()
	if req, ok := p.(FileLocator).RefreshRequest("FX1"); ok {
		t.Errorf("twilio_fax has a refresh request: %+v", req)
	}
}
