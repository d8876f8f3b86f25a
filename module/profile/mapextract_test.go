package profile

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/faxhook/caddy-faxhook/module/profile/fax"
)

const activeJob = `{"job_id":101000,"kind":"outbound","state":"ACTIVE","sandbox":true,"page_count":3,
 "submitted":1636043310.5,"finished":null,"caller_id":"+15551110000","remote":null,"line_number":null,
 "price_cents":21,"labels":{"order":"42","n":5,"b":true,"z":null},"failure":null,"extra":{"ignored":[1,2]},
 "destinations":[
  {"number":"+15550000000","state":"DONE","retries":0,"page":3,"finished":"1636043315","line":{"bps":14400,"ppm":8040},"failure":null},
  {"number":15550000001,"state":"TRANSMITTING","retries":"1","page":1,"finished":null,"line":null,"failure":null},
  {"number":"+15550000002","state":"WAITING","retries":0,"page":0,"finished":null,"line":null,"failure":null}]}`

const activeFaxJSON = `{"id":101000,"direction":"sent","num_pages":3,"status":"inprogress","is_test":true,` +
	`"created_at":"2021-11-04T16:28:30.500+00:00","caller_id":"+15551110000","from_number":null,"completed_at":null,` +
	`"caller_name":null,"cost":21,"tags":{"b":"true","n":"5","order":"42"},"recipients":[` +
	`{"phone_number":"+15550000000","status":"success","retry_count":0,"completed_at":"2021-11-04T16:28:35.000+00:00",` +
	`"bitrate":14400,"resolution":8040,"error_type":null,"error_id":null,"error_message":null},` +
	`{"phone_number":"15550000001","status":"callactive","retry_count":1,"completed_at":null,"bitrate":null,` +
	`"resolution":null,"error_type":null,"error_id":null,"error_message":null},` +
	`{"phone_number":"+15550000002","status":null,"retry_count":0,"completed_at":null,"bitrate":null,` +
	`"resolution":null,"error_type":null,"error_id":null,"error_message":null}],` +
	`"to_number":null,"error_id":null,"error_type":null,"error_message":null,"barcodes":[]}`

func faxJSON(t *testing.T, o Object) string {
	t.Helper()
	b, err := o.Fax.JSON()
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestExtractStatus(t *testing.T) {
	m := testMapping()
	objs, err := m.Extract(RouteStatus, []byte(`{"job":`+activeJob+`}`))
	if err != nil || len(objs) != 1 {
		t.Fatalf("objs %d err %v", len(objs), err)
	}
	o := objs[0]
	if got := faxJSON(t, o); got != activeFaxJSON {
		t.Fatalf("fax\n got %s\nwant %s", got, activeFaxJSON)
	}
	if !o.Full {
		t.Fatal("not Full")
	}
	want := map[string]int{"+15550000000": 3, "15550000001": 1, "+15550000002": 0}
	if fmt.Sprint(o.CurrentPage) != fmt.Sprint(want) {
		t.Fatalf("CurrentPage %v", o.CurrentPage)
	}
	if o.Fax.Barcodes != nil {
		t.Error("barcodes without a mapping for them")
	}

	// The same object through the Phaxio extractor gives the same Object.
	p, err := Phaxio([]byte(`{"success":true,"data":` + strings.Replace(activeFaxJSON,
		`"error_message":null}],`, `"error_message":null,"x_current_page":0}],`, 1) + `}`))
	if err != nil || len(p) != 1 {
		t.Fatal(err)
	}
	if faxJSON(t, p[0]) != faxJSON(t, o) || p[0].Full != o.Full {
		t.Fatal("Phaxio and mapping disagree")
	}
}

func TestExtractFailure(t *testing.T) {
	m := testMapping()
	body := `{"job":{"job_id":"77","kind":"outbound","state":"FAILED","page_count":"2","submitted":"1636043310",
	"finished":1636043320,"failure":{"category":"line","code":17,"text":"Busy"},"remote":{"number":null},
	"destinations":[{"number":"+15550000002","state":"ERROR","retries":2,"page":0,"finished":1636043320,
	"failure":{"category":"line","code":"17","text":"Busy"}}]}}`
	objs, err := m.Extract(RouteCancel, []byte(body))
	if err != nil || len(objs) != 1 {
		t.Fatalf("objs %d err %v", len(objs), err)
	}
	f := objs[0].Fax
	r := f.Recipients[0]
	if f.ID != 77 || f.Status != "failure" || f.NumPages != 2 || *f.ErrorType != "lineError" || *f.ErrorID != 17 ||
		*f.ErrorMessage != "Busy" || *f.CompletedAt != "2021-11-04T16:28:40.000+00:00" || f.FromNumber != nil {
		t.Fatalf("fax %s", faxJSON(t, objs[0]))
	}
	if *r.Status != "failure" || r.RetryCount != 2 || *r.ErrorType != "lineError" || *r.ErrorID != 17 || r.Bitrate != nil {
		t.Fatalf("recipient %+v", r)
	}
	if f.CallerName != nil || f.ToNumber != nil {
		t.Fatal("remote.name and line_number are missing, yet caller_name or to_number got a value")
	}
}

func TestExtractList(t *testing.T) {
	m := testMapping()
	body := `{"items":[` + activeJob + `,{"job_id":5,"kind":"sideways","state":"ACTIVE"},
		{"job_id":6,"kind":"inbound","state":"DELIVERED","remote":{"number":"+15551234567","name":"ACME"},"line_number":"+18773346654"},
		"junk",{"job_id":7,"state":"EXPLODED"},{"job_id":8,"state":"ACTIVE","destinations":[{"state":"DONE"}]},
		{"job_id":9},{"job_id":10,"state":null}],"next":null}`
	found, err := m.ExtractWithIDs(RouteList, []byte(body))
	if len(found) != 4 {
		t.Fatalf("%d objects: %+v", len(found), found)
	}
	if !errors.Is(err, ErrSkipped) {
		t.Fatalf("err %v, want ErrSkipped", err)
	}
	for _, want := range []string{
		`list response, fax 1: fax skipped: fields.direction: "sideways" is neither in the map nor a v2.1 value`,
		`fax 3: fax skipped: the string "junk" is not a fax object`,
		`fax 4: fax skipped: fields.status: "EXPLODED"`,
		`fax 5: fax skipped: recipient 0: recipient.phone_number: "number" is missing`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	if found[0].Object.Fax.ID != 101000 || found[0].UpstreamID != "101000" {
		t.Fatalf("first %+v", found[0])
	}
	in := found[1].Object
	if in.Fax.Direction != "received" || *in.Fax.FromNumber != "+15551234567" || *in.Fax.CallerName != "ACME" ||
		*in.Fax.ToNumber != "+18773346654" || in.Fax.Status != "success" || in.Fax.Recipients != nil {
		t.Fatalf("inbound %s", faxJSON(t, in))
	}
	// A fax without status (or with a null one) is an id only, as in a send response.
	for _, f := range found[2:] {
		if f.Object.Full || f.Object.Fax.Status != "" || f.Object.Fax.ID < 9 {
			t.Fatalf("id-only fax %+v", f.Object)
		}
	}
	// Extract returns the same objects beside the error.
	objs, err2 := m.Extract(RouteList, []byte(body))
	if len(objs) != 4 || err2 == nil || err2.Error() != err.Error() {
		t.Fatalf("Extract: %d %v", len(objs), err2)
	}
}

func TestExtractSendAndIDs(t *testing.T) {
	m := testMapping()
	for _, tc := range []struct {
		body     string
		id       int64
		upstream string
	}{
		{`{"accepted":true,"job_id":101003}`, 101003, "101003"},
		{`{"job_id":"42"}`, 42, "42"},
		{`{"job_id":"job-7f3a"}`, DeriveID("job-7f3a"), "job-7f3a"},
		{`{"job_id":123456789012345678901234}`, DeriveID("123456789012345678901234"), "123456789012345678901234"},
		{`{"job_id":1e3}`, 1000, "1e3"},
	} {
		for _, route := range []string{RouteSend, RouteResend} {
			objs, err := m.Extract(route, []byte(tc.body))
			if err != nil || len(objs) != 1 || objs[0].Full || objs[0].Fax.ID != tc.id || objs[0].Fax.Status != "" {
				t.Fatalf("%s %s: %+v %v", route, tc.body, objs, err)
			}
		}
		id, upstream, ok := m.NewID([]byte(tc.body))
		if !ok || id != tc.id || upstream != tc.upstream {
			t.Fatalf("NewID(%s) = %d %q %v", tc.body, id, upstream, ok)
		}
	}
	for _, body := range []string{`{"job_id":null}`, `{"nope":1}`, `{"job_id":true}`, `{"job_id":""}`, `[]`, `x`} {
		if id, _, ok := m.NewID([]byte(body)); ok {
			t.Errorf("NewID(%s) = %d", body, id)
		}
	}
	// Without send_id, the send response carries the whole fax at object.
	m.SendID = ""
	objs, err := m.Extract(RouteSend, []byte(`{"job":`+activeJob+`}`))
	if err != nil || len(objs) != 1 || !objs[0].Full {
		t.Fatalf("send with object: %v %v", objs, err)
	}
	if id, up, ok := m.NewID([]byte(`{"job":` + activeJob + `}`)); !ok || id != 101000 || up != "101000" {
		t.Fatalf("NewID from object: %d %q %v", id, up, ok)
	}
}

func TestDeriveID(t *testing.T) {
	a, b := DeriveID("job-7f3a"), DeriveID("job-7f3b")
	if a == b || a <= 0 || a > 1<<53-1 || a != DeriveID("job-7f3a") {
		t.Fatalf("DeriveID: %d %d", a, b)
	}
	// The derived id survives a float64 round trip (JavaScript numbers).
	if int64(float64(a)) != a {
		t.Fatal("derived id is not exact as float64")
	}
}

func TestExtractNoObjects(t *testing.T) {
	m := testMapping()
	for _, tc := range []struct{ route, body, want string }{
		{RouteStatus, `not json`, "not JSON"},
		{RouteStatus, `{"job":1}{}`, "not JSON"},
		{RouteStatus, `{"error":"not found"}`, `no fax data: nothing at "job"`},
		{RouteStatus, `{"job":null}`, `no fax data: nothing at "job"`},
		{RouteStatus, `{"job":"x"}`, "neither object nor array"},
		{RouteList, `{"items":{"a":1}}`, "fields.id"},
		{RouteStatus, `[1]`, `is an array, and "job" is not an index`},
		{"nope", `{}`, "unknown route"},
	} {
		objs, err := m.Extract(tc.route, []byte(tc.body))
		if len(objs) != 0 || err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s %s: %v %v, want error %q", tc.route, tc.body, objs, err, tc.want)
		}
	}
	if objs, err := m.Extract(RouteStatus, []byte(`{"error":"x"}`)); !errors.Is(err, ErrNoObjects) || objs != nil {
		t.Fatalf("ErrNoObjects: %v", err)
	}
	if objs, err := m.Extract(RouteFile, []byte("%PDF-1.4")); objs != nil || err != nil {
		t.Fatalf("file: %v %v", objs, err)
	}
	if _, err := (&Mapping{}).Extract(RouteStatus, []byte(`{}`)); err == nil || !strings.Contains(err.Error(), "fields.id") {
		t.Fatalf("empty mapping: %v", err)
	}
}

func TestExtractRootAndArrays(t *testing.T) {
	// Objects at the body root, a list that is the body itself, recipients as plain strings,
	// constants, and RFC 3339 times keeping their offset.
	m := &Mapping{
		Status: "GET /faxes/{id}", List: "GET /faxes",
		Fields: FieldMap{
			ID: "uuid", Status: "status", Direction: "=sent", IsTest: "=false", CreatedAt: "created",
			Recipients: "to", Tags: "meta",
		},
		Recipient: RecipientFieldMap{PhoneNumber: ".", Status: "=queued"},
	}
	if err := m.Validate(); err != nil {
		t.Fatal(err)
	}
	objs, err := m.Extract(RouteList, []byte(`[{"uuid":"9b2e","status":"queued","created":"2021-11-04T16:28:30.25-05:00",
		"to":["+15550000000","+15550000001"],"meta":{}}]`))
	if err != nil || len(objs) != 1 {
		t.Fatalf("%v %v", objs, err)
	}
	f := objs[0].Fax
	if f.ID != DeriveID("9b2e") || f.Direction != "sent" || f.IsTest ||
		f.CreatedAt != "2021-11-04T16:28:30.250-05:00" || len(f.Recipients) != 2 ||
		f.Recipients[1].PhoneNumber != "+15550000001" || *f.Recipients[1].Status != "queued" || objs[0].CurrentPage != nil {
		t.Fatalf("fax %s", faxJSON(t, objs[0]))
	}
	objs, err = m.Extract(RouteStatus, []byte(`{"uuid":"1","status":"success","to":[{"n":1}]}`))
	if err == nil || len(objs) != 0 || !strings.Contains(err.Error(), "recipient.phone_number: an object is not a string") {
		t.Fatalf("object as phone number: %v %v", objs, err)
	}
}

func TestTimes(t *testing.T) {
	for _, tc := range []struct {
		format, zone string
		in           string // JSON value
		want         string // "" for an error
	}{
		{"unix", "", `1636043310`, "2021-11-04T16:28:30.000+00:00"},
		{"unix", "", `"1636043310.123456"`, "2021-11-04T16:28:30.123+00:00"},
		{"unix", "", `1.63604331e9`, "2021-11-04T16:28:30.000+00:00"},
		{"unix", "-05:00", `1636043310`, "2021-11-04T11:28:30.000-05:00"},
		{"unix", "America/Chicago", `1636043310`, "2021-11-04T11:28:30.000-05:00"},
		{"unix", "", `-1`, "1969-12-31T23:59:59.000+00:00"},
		{"unix", "", `1e99999999`, ""},
		{"unix", "", `99999999999999999999`, ""},
		{"unix", "", `"soon"`, ""},
		{"unix", "", `true`, ""},
		{"unix_ms", "", `1636043310123`, "2021-11-04T16:28:30.123+00:00"},
		{"unix_ms", "+01:00", `"1636043310123"`, "2021-11-04T17:28:30.123+01:00"},
		{"", "", `"2021-11-04T16:28:30Z"`, "2021-11-04T16:28:30.000+00:00"},
		{"rfc3339", "", `"2021-11-04T16:28:30.000-05:00"`, "2021-11-04T16:28:30.000-05:00"},
		{"rfc3339", "UTC", `"2021-11-04T16:28:30.000-05:00"`, "2021-11-04T21:28:30.000+00:00"},
		{"rfc3339", "", `"2021-11-04 16:28:30"`, ""},
		{"rfc3339", "", `1636043310`, ""},
		{"2006-01-02 15:04:05", "", `"2021-11-04 16:28:30"`, "2021-11-04T16:28:30.000+00:00"},
		{"2006-01-02 15:04:05", "-05:00", `"2021-11-04 16:28:30"`, "2021-11-04T16:28:30.000-05:00"},
		{"02/01/2006 15:04 MST", "", `"04/11/2021 16:28 UTC"`, "2021-11-04T16:28:00.000+00:00"},
		{"unix", "", `""`, "null"},
		{"unix", "", `null`, "null"},
	} {
		m := &Mapping{Status: "GET /f/{id}", TimeFormat: tc.format, TimeZone: tc.zone,
			Fields: FieldMap{ID: "id", Status: "s", CompletedAt: "t"}}
		if err := m.Validate(); err != nil {
			t.Fatal(err)
		}
		objs, err := m.Extract(RouteStatus, []byte(`{"id":1,"s":"success","t":`+tc.in+`}`))
		switch {
		case tc.want == "":
			if err == nil || !errors.Is(err, ErrSkipped) || !strings.Contains(err.Error(), "fields.completed_at") {
				t.Errorf("%s %s: %v, want an error", tc.format, tc.in, err)
			}
		case err != nil || len(objs) != 1:
			t.Errorf("%s %s: %v", tc.format, tc.in, err)
		case tc.want == "null":
			if objs[0].Fax.CompletedAt != nil {
				t.Errorf("%s %s: want null, got %v", tc.format, tc.in, objs[0].Fax.CompletedAt)
			}
		case objs[0].Fax.CompletedAt == nil || *objs[0].Fax.CompletedAt != tc.want:
			t.Errorf("%s %s %s: got %v, want %s", tc.format, tc.zone, tc.in, fmtPtr(objs[0].Fax.CompletedAt), tc.want)
		}
	}
}

func fmtPtr(p *string) string {
	if p == nil {
		return "<nil>"
	}
	return *p
}

func TestStrictConversions(t *testing.T) {
	m := testMapping()
	for _, tc := range []struct{ job, want string }{
		{`"page_count":"three"`, `fields.num_pages: the string "three" is not an integer`},
		{`"page_count":2.5`, `fields.num_pages: the number 2.5 is not an integer`},
		{`"sandbox":"yes"`, `fields.is_test: the string "yes" is not a boolean`},
		{`"labels":[1]`, `fields.tags: an array is not an object`},
		{`"labels":{"a":{}}`, `fields.tags: tag "a": an object is not a scalar`},
		{`"caller_id":{}`, `fields.caller_id: an object is not a string`},
		{`"failure":"busy"`, `fields.error_type: path "failure.category": "failure" is the string "busy", not an object`},
		{`"destinations":{}`, `fields.recipients: an object is not an array`},
		{`"destinations":[{"number":"1","state":"LOST"}]`, `recipient 0: recipient.status: "LOST"`},
		{`"destinations":[{"number":"1","page":"x"}]`, `recipient 0: recipient.current_page: the string "x"`},
		{`"destinations":[{"number":"1","line":{"bps":1.5}}]`, `recipient 0: recipient.bitrate:`},
		{`"kind":7`, `fields.direction: "7" is neither`},
		{`"job_id":{}`, `fields.id: an object is not an id`},
		{`"job_id":null`, `fields.id: "job_id" is null`},
	} {
		body := `{"job":{"job_id":1,"state":"ACTIVE",` + tc.job + `}}`
		body = strings.Replace(body, `"job_id":1,"state":"ACTIVE","job_id"`, `"state":"ACTIVE","job_id"`, 1)
		objs, err := m.Extract(RouteStatus, []byte(body))
		if len(objs) != 0 || err == nil || !errors.Is(err, ErrSkipped) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v %v, want %q", tc.job, objs, err, tc.want)
		}
	}
	// v2.1 values pass without a map entry; recipient statuses map "" to null.
	objs, err := m.Extract(RouteStatus, []byte(`{"job":{"job_id":1,"state":"pendingbatch","kind":"sent",
		"destinations":[{"number":"1","state":"willretry"},{"number":"2","state":"WAITING"},{"number":"3","state":null}],
		"failure":{"category":"weirdError","code":"9"}}}`))
	if err != nil || len(objs) != 1 {
		t.Fatalf("%v %v", objs, err)
	}
	f := objs[0].Fax
	if f.Status != "pendingbatch" || f.Direction != "sent" || *f.Recipients[0].Status != "willretry" ||
		f.Recipients[1].Status != nil || f.Recipients[2].Status != nil || *f.ErrorType != "weirdError" || *f.ErrorID != 9 {
		t.Fatalf("fax %s", faxJSON(t, objs[0]))
	}
}

func TestExtractMatchesPhaxioOnFaxappShapes(t *testing.T) {
	// A mapping can also describe Phaxio itself: the result equals Phaxio's.
	m := &Mapping{
		Status: "GET /v2.1/faxes/{id}", Object: "data",
		Fields: FieldMap{
			ID: "id", Direction: "direction", NumPages: "num_pages", Status: "status", IsTest: "is_test",
			CreatedAt: "created_at", CallerID: "caller_id", FromNumber: "from_number", CompletedAt: "completed_at",
			CallerName: "caller_name", Cost: "cost", Tags: "tags", Recipients: "recipients", ToNumber: "to_number",
			ErrorID: "error_id", ErrorType: "error_type", ErrorMessage: "error_message",
		},
		Recipient: RecipientFieldMap{
			PhoneNumber: "phone_number", Status: "status", RetryCount: "retry_count", CompletedAt: "completed_at",
			Bitrate: "bitrate", Resolution: "resolution", ErrorType: "error_type", ErrorID: "error_id",
			ErrorMessage: "error_message", CurrentPage: fax.ExtCurrentPage,
		},
	}
	body := `{"success":true,"data":{"id":323034813,"direction":"sent","num_pages":0,"status":"queued","is_test":true,
 "created_at":"2021-11-04T16:28:30.000-05:00","caller_id":null,"from_number":null,"completed_at":null,
 "caller_name":null,"cost":0,"tags":{},"recipients":[{"phone_number":"+15558675309","status":null,
 "retry_count":0,"completed_at":null,"bitrate":null,"resolution":null,"error_type":null,"error_id":null,
 "error_message":null,"x_current_page":2}],"to_number":null,"error_id":null,"error_type":null,"error_message":null,"barcodes":[]}}`
	got, err := m.Extract(RouteStatus, []byte(body))
	if err != nil {
		t.Fatal(err)
	}
	want, err := Phaxio([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	if faxJSON(t, got[0]) != faxJSON(t, want[0]) || got[0].Full != want[0].Full ||
		fmt.Sprint(got[0].CurrentPage) != fmt.Sprint(want[0].CurrentPage) {
		t.Fatalf("got %s\nwant %s", faxJSON(t, got[0]), faxJSON(t, want[0]))
	}
}

func FuzzExtract(f *testing.F) {
	f.Add(uint8(0), []byte(`{"job":`+activeJob+`}`))
	f.Add(uint8(1), []byte(`{"items":[`+activeJob+`,{"job_id":"x","state":"FAILED","destinations":["a"]}]}`))
	f.Add(uint8(2), []byte(`{"job_id":"job-7f3a"}`))
	f.Add(uint8(0), []byte(`{"job":{"job_id":1,"state":"ACTIVE","submitted":"1e30","finished":"","labels":{"a":null}}}`))
	f.Add(uint8(0), []byte(`{"job":[{"job_id":-1,"state":"queued","failure":null,"destinations":[{"number":1,"page":"2"}]}]}`))
	routes := []string{RouteStatus, RouteList, RouteSend, RouteResend, RouteCancel, RouteFile}
	maps := []*Mapping{testMapping(), func() *Mapping {
		m := testMapping()
		m.SendID, m.TimeFormat, m.TimeZone, m.Recipient.PhoneNumber = "", "2006-01-02 15:04", "America/New_York", "."
		return m
	}()}
	f.Fuzz(func(t *testing.T, route uint8, body []byte) {
		for _, m := range maps {
			r := routes[int(route)%len(routes)]
			found, err := m.ExtractWithIDs(r, body)
			if err != nil && len(found) > 0 && !errors.Is(err, ErrSkipped) {
				t.Fatalf("objects with an error that is not ErrSkipped: %v", err)
			}
			for _, fo := range found {
				o := fo.Object
				if fo.UpstreamID == "" {
					t.Fatal("object without id")
				}
				b, err := o.Fax.JSON()
				if err != nil {
					t.Fatalf("JSON: %v", err)
				}
				if !json.Valid(b) {
					t.Fatal("invalid JSON")
				}
				if o.Full && !contains(faxStatuses, o.Fax.Status) {
					t.Fatalf("status %q", o.Fax.Status)
				}
				if o.Fax.Direction != "" && !contains(directions, o.Fax.Direction) {
					t.Fatalf("direction %q", o.Fax.Direction)
				}
				for _, rc := range o.Fax.Recipients {
					if rc.Status != nil && !contains(recipientStatuses, *rc.Status) {
						t.Fatalf("recipient status %q", *rc.Status)
					}
				}
			}
			_, _, _ = m.NewID(body)
		}
	})
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func BenchmarkExtractList(b *testing.B) {
	m := testMapping()
	var sb strings.Builder
	sb.WriteString(`{"items":[`)
	for i := range 25 {
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString(activeJob)
	}
	sb.WriteString(`]}`)
	body := []byte(sb.String())
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if objs, err := m.Extract(RouteList, body); err != nil || len(objs) != 25 {
			b.Fatal(err)
		}
	}
}
