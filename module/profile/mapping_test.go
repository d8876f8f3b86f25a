package profile

import (
	"encoding/json"
	"strings"
	"testing"
)

// testMapping is a mapping for a service shaped like examples/otherfax.
func testMapping() *Mapping {
	return &Mapping{
		Send:        "POST /api/fax/jobs",
		Resend:      "POST /api/fax/jobs/{id}/retry",
		Cancel:      "POST /api/fax/jobs/{id}/cancel",
		Status:      "GET /api/fax/jobs/{id}",
		List:        "GET /api/fax/jobs",
		File:        "GET /api/fax/jobs/{id}/document",
		Object:      "job",
		ListObjects: "items",
		SendID:      "job_id",
		Fields: FieldMap{
			ID: "job_id", Direction: "kind", Status: "state", IsTest: "sandbox", NumPages: "page_count",
			CreatedAt: "submitted", CompletedAt: "finished", CallerID: "caller_id", FromNumber: "remote.number",
			CallerName: "remote.name", ToNumber: "line_number", Cost: "price_cents", Tags: "labels",
			ErrorType: "failure.category", ErrorID: "failure.code", ErrorMessage: "failure.text",
			Recipients: "destinations",
		},
		Recipient: RecipientFieldMap{
			PhoneNumber: "number", Status: "state", RetryCount: "retries", CompletedAt: "finished",
			CurrentPage: "page", Bitrate: "line.bps", Resolution: "line.ppm",
			ErrorType: "failure.category", ErrorID: "failure.code", ErrorMessage: "failure.text",
		},
		StatusMap: map[string]string{
			"PENDING": "queued", "ACTIVE": "inprogress", "DELIVERED": "success", "FAILED": "failure", "PARTIAL": "partialsuccess",
		},
		RecipientStatusMap: map[string]string{
			"WAITING": "", "DIALING": "ringing", "BUSY_RETRY": "willretry", "TRANSMITTING": "callactive",
			"DONE": "success", "ERROR": "failure",
		},
		DirectionMap: map[string]string{"outbound": "sent", "inbound": "received"},
		ErrorTypeMap: map[string]string{
			"line": "lineError", "document": "documentConversionError", "protocol": "faxError",
			"fatal": "fatalError", "general": "generalError",
		},
		TimeFormat:    "unix",
		CallbackField: "notify_url",
	}
}

func TestValidateOK(t *testing.T) {
	if err := testMapping().Validate(); err != nil {
		t.Fatal(err)
	}
	// The JSON form round-trips into the same mapping.
	b, err := json.Marshal(testMapping())
	if err != nil {
		t.Fatal(err)
	}
	var m Mapping
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if err := m.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{`"list_objects":"items"`, `"recipient_status_map"`, `"current_page":"page"`, `"callback_field":"notify_url"`} {
		if !strings.Contains(string(b), name) {
			t.Errorf("JSON lacks %s: %s", name, b)
		}
	}
}

func TestValidateErrors(t *testing.T) {
	for _, tc := range []struct {
		name   string
		modify func(m *Mapping)
		want   string
	}{
		{"no routes", func(m *Mapping) { *m = Mapping{Fields: m.Fields} }, "no route"},
		{"no method", func(m *Mapping) { m.Status = "/api/fax/jobs/{id}" }, "mapping: status:"},
		{"lower-case method", func(m *Mapping) { m.Status = "get /api/fax/jobs/{id}" }, "mapping: status: method"},
		{"relative path", func(m *Mapping) { m.List = "GET api/fax/jobs" }, "mapping: list: path"},
		{"status without id", func(m *Mapping) { m.Status = "GET /api/fax/job" }, "mapping: status: \"GET /api/fax/job\" has no {id}"},
		{"two ids", func(m *Mapping) { m.Status = "GET /a/{id}/{id}" }, "more than one {id}"},
		{"partial placeholder", func(m *Mapping) { m.Status = "GET /a/{id}.json" }, "only placeholder"},
		{"empty segment", func(m *Mapping) { m.List = "GET /a//b" }, "empty segment"},
		{"duplicate", func(m *Mapping) { m.Cancel = "GET /api/fax/jobs/{id}" }, "is the same route as"},
		{"no id", func(m *Mapping) { m.Fields.ID = "" }, "mapping: fields.id: required"},
		{"no status", func(m *Mapping) { m.Fields.Status = "" }, "mapping: fields.status: required"},
		{"bad path", func(m *Mapping) { m.Fields.ErrorID = "failure..code" }, "mapping: fields.error_id: path \"failure..code\" has an empty segment"},
		{"bad object path", func(m *Mapping) { m.ListObjects = "items." }, "mapping: list_objects:"},
		{"constant container", func(m *Mapping) { m.Fields.Tags = "=x" }, "mapping: fields.tags:"},
		{"recipients without phone", func(m *Mapping) { m.Recipient.PhoneNumber = "" }, "mapping: recipient.phone_number: required"},
		{"bad status target", func(m *Mapping) { m.StatusMap["X"] = "done" }, `mapping: status_map: "X" maps to "done"`},
		{"null fax status", func(m *Mapping) { m.StatusMap["X"] = "" }, `mapping: status_map: "X" maps to ""`},
		{"bad recipient target", func(m *Mapping) { m.RecipientStatusMap["X"] = "partialsuccess" }, "mapping: recipient_status_map:"},
		{"bad direction", func(m *Mapping) { m.DirectionMap["X"] = "outbound" }, "mapping: direction_map:"},
		{"bad error type", func(m *Mapping) { m.ErrorTypeMap["X"] = "busy" }, "mapping: error_type_map:"},
		{"bad time format", func(m *Mapping) { m.TimeFormat = "epoch" }, "mapping: time_format: \"epoch\""},
		{"bad zone", func(m *Mapping) { m.TimeZone = "Mars/Olympus" }, "mapping: time_zone:"},
		{"bad offset", func(m *Mapping) { m.TimeZone = "+25:00" }, "mapping: time_zone:"},
		{"callback spaces", func(m *Mapping) { m.CallbackField = " notify_url" }, "mapping: callback_field:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := testMapping()
			tc.modify(m)
			err := m.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate() = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestValidateOptions(t *testing.T) {
	for _, tc := range []struct{ format, zone string }{
		{"", ""}, {"rfc3339", "UTC"}, {"unix_ms", "Local"}, {"2006-01-02 15:04:05", "America/Chicago"},
		{"02.01.2006 15:04", "-05:00"}, {"unix", "+05:30"},
	} {
		m := testMapping()
		m.TimeFormat, m.TimeZone = tc.format, tc.zone
		if err := m.Validate(); err != nil {
			t.Errorf("%q %q: %v", tc.format, tc.zone, err)
		}
	}
	m := testMapping()
	m.Fields.Direction, m.Fields.IsTest, m.Recipient.PhoneNumber = "=sent", "=true", "."
	if err := m.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestMatch(t *testing.T) {
	m := testMapping()
	m.List = "GET /api/fax/jobs"
	for _, tc := range []struct {
		method, path string
		route, id    string
	}{
		{"POST", "/api/fax/jobs", RouteSend, ""},
		{"POST", "/api/fax/jobs/", RouteSend, ""},
		{"POST", "/v1/api/fax/jobs", RouteSend, ""},
		{"GET", "/api/fax/jobs", RouteList, ""},
		{"GET", "/api/fax/jobs/101000", RouteStatus, "101000"},
		{"GET", "/api/fax/jobs/job-7f3a", RouteStatus, "job-7f3a"},
		{"GET", "/prefix/api/fax/jobs/7/document", RouteFile, "7"},
		{"POST", "/api/fax/jobs/7/retry", RouteResend, "7"},
		{"POST", "/api/fax/jobs/7/cancel", RouteCancel, "7"},
		{"DELETE", "/api/fax/jobs/7", "", ""},
		{"GET", "/api/fax/jobs/7/other", "", ""},
		{"GET", "/api/fax/job", "", ""},
		{"GET", "/", "", ""},
		{"GET", "", "", ""},
		{"POST", "/api/fax/jobs/7", "", ""},
	} {
		route, id, ok := m.Match(tc.method, tc.path)
		if route != tc.route || id != tc.id || ok != (tc.route != "") {
			t.Errorf("Match(%s %s) = %q %q %v, want %q %q", tc.method, tc.path, route, id, ok, tc.route, tc.id)
		}
	}

	// The pattern with more literal segments wins over an {id} segment.
	m = &Mapping{Status: "GET /jobs/{id}", List: "GET /jobs/recent", Fields: FieldMap{ID: "id", Status: "s"}}
	if route, _, _ := m.Match("GET", "/jobs/recent"); route != RouteList {
		t.Errorf("literal segment lost to {id}: %s", route)
	}
	if route, id, _ := m.Match("GET", "/jobs/12"); route != RouteStatus || id != "12" {
		t.Errorf("status: %s %s", route, id)
	}
	// Invalid patterns never match.
	m = &Mapping{Status: "GET /jobs", Send: "post /jobs"}
	if route, _, ok := m.Match("GET", "/jobs"); ok {
		t.Errorf("status without {id} matched as %s", route)
	}
}

func TestPath(t *testing.T) {
	m := testMapping()
	method, p, err := m.Path(RouteStatus, "job 7/a")
	if err != nil || method != "GET" || p != "/api/fax/jobs/job%207%2Fa" {
		t.Fatalf("Path = %s %s %v", method, p, err)
	}
	if method, p, err = m.Path(RouteList, ""); err != nil || method != "GET" || p != "/api/fax/jobs" {
		t.Fatalf("Path(list) = %s %s %v", method, p, err)
	}
	if _, _, err = m.Path(RouteFile, ""); err == nil {
		t.Fatal("Path(file) without an id")
	}
	if _, _, err = m.Path("nope", "1"); err == nil {
		t.Fatal("Path of an unknown route")
	}
	m.Cancel = ""
	if _, _, err = m.Path(RouteCancel, "1"); err == nil {
		t.Fatal("Path of an unconfigured route")
	}
}

func TestCallback(t *testing.T) {
	if got := (&Mapping{}).Callback(); got != "callback_url" {
		t.Fatalf("default %q", got)
	}
	if got := testMapping().Callback(); got != "notify_url" {
		t.Fatalf("configured %q", got)
	}
}
