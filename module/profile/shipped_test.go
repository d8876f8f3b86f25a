package profile

import (
	"strings"
	"testing"
	"time"

	"github.com/faxhook/caddy-faxhook/module/profile/fax"
)

// Every shipped mapping decodes strictly and validates.
func TestShippedProfilesValidate(t *testing.T) {
	names := ShippedNames()
	if len(names) == 0 {
		t.Fatal("no shipped profile")
	}
	for _, name := range names {
		if _, err := Shipped(name); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := Shipped("phaxio_v9"); err == nil || !strings.Contains(err.Error(), "sinch_v3") {
		t.Errorf("an unknown profile: %v", err)
	}
}

// sinch_v3 reads Sinch Fax v3 JSON as documented (sinch-sdk-node's fax models).
func TestShippedSinchV3(t *testing.T) {
	m, err := Shipped("sinch_v3")
	if err != nil {
		t.Fatal(err)
	}
	if route, id, ok := m.Match("GET", "/v3/projects/p1/faxes/01HXA/file.pdf"); !ok || route != RouteFile || id != "01HXA" {
		t.Fatalf("file route: %q %q %v", route, id, ok)
	}
	if route, id, ok := m.Match("GET", "/v3/projects/p1/faxes/01HXA"); !ok || route != RouteStatus || id != "01HXA" {
		t.Fatalf("status route: %q %q %v", route, id, ok)
	}
	o := extractOne(t, m, RouteStatus, `{"id":"01HXA","direction":"OUTBOUND","from":"+15551110000","to":"+15552220000",
	  "numberOfPages":3,"pagesSentSuccessfully":3,"status":"FAILURE","createTime":"2026-12-05T03:00:00Z",
	  "completedTime":"2026-12-05T03:02:00Z","price":{"amount":"0.2100","currencyCode":"USD"},"labels":{"order":"42"},
	  "errorType":"CALL_ERROR","errorCode":41,"errorMessage":"Busy","retryCount":1,"hasFile":"true"}`).Object
	f := o.Fax
	if f.Direction != fax.DirectionSent || f.Status != fax.StatusFailure || f.Cost != 21 || f.NumPages != 3 ||
		f.Tags["sinch_fax_id"] != "01HXA" || f.Tags["order"] != "42" || *f.ErrorType != "lineError" ||
		len(f.Recipients) != 1 || f.Recipients[0].PhoneNumber != "+15552220000" || f.Recipients[0].RetryCount != 1 ||
		*f.Recipients[0].ErrorMessage != "Busy" || f.FromNumber != nil {
		t.Fatalf("sent fax: %+v", f)
	}
}

// telnyx reads Telnyx Programmable Fax JSON as documented (telnyx-java docs/Fax.md): the
// {"data": …} envelope, UUID ids kept in tags, statuses with dots, direction-dependent fields,
// the received fax's document at media_url.
func TestShippedTelnyx(t *testing.T) {
	m, err := Shipped("telnyx")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ method, path, route, id string }{
		{"POST", "/v2/faxes", RouteSend, ""},
		{"GET", "/v2/faxes/0c6f8c3e-0b0e-4a5e-9a43-5b1e0cf2a001", RouteStatus, "0c6f8c3e-0b0e-4a5e-9a43-5b1e0cf2a001"},
		{"GET", "/v2/faxes", RouteList, ""},
		{"POST", "/v2/faxes/u1/actions/cancel", RouteCancel, "u1"},
	} {
		if route, id, ok := m.Match(c.method, c.path); !ok || route != c.route || id != c.id {
			t.Errorf("%s %s: %q %q %v", c.method, c.path, route, id, ok)
		}
	}
	if m.Callback() != "webhook_url" {
		t.Errorf("callback field %q", m.Callback())
	}
	const uid = "0c6f8c3e-0b0e-4a5e-9a43-5b1e0cf2a001"
	send := extractOne(t, m, RouteSend, `{"data":{"record_type":"fax","id":"`+uid+`","connection_id":"c1","direction":"outbound",
	  "media_url":"https://example.com/doc.pdf","to":"+15552220000","from":"+15551110000","quality":"high","status":"queued",
	  "webhook_url":"https://app.example/hook","store_media":false,"created_at":"2026-12-05T03:00:00.521992Z","updated_at":"2026-12-05T03:00:00.521992Z"}}`)
	f := send.Object.Fax
	if send.UpstreamID != uid || f.ID != DeriveID(uid) || f.Tags["telnyx_fax_id"] != uid || f.Status != fax.StatusQueued ||
		f.Direction != fax.DirectionSent || f.CallerID == nil || *f.CallerID != "+15551110000" || f.CompletedAt != nil ||
		f.ErrorType != nil || len(f.Recipients) != 1 || f.Recipients[0].PhoneNumber != "+15552220000" || f.Recipients[0].Status != nil ||
		f.CreatedAt != "2026-12-05T03:00:00.521+00:00" {
		t.Fatalf("queued fax: %+v", f)
	}
	o := extractOne(t, m, RouteStatus, `{"data":{"id":"`+uid+`","direction":"outbound","to":"+15552220000","from":"+15551110000",
	  "status":"failed","created_at":"2026-12-05T03:00:00Z","updated_at":"2026-12-05T03:01:00Z"}}`).Object
	f = o.Fax
	if f.Status != fax.StatusFailure || *f.ErrorType != "generalError" || *f.Recipients[0].Status != fax.StatusFailure ||
		f.CompletedAt == nil || *f.CompletedAt != "2026-12-05T03:01:00.000+00:00" {
		t.Fatalf("failed fax: %+v", f)
	}
	list, err := m.ExtractWithIDs(RouteList, []byte(`{"data":[{"id":"r1","direction":"inbound","to":"+18005550100","from":"+15553330000",
	  "status":"received","media_url":"https://s3.example/r1.pdf","created_at":"2026-12-05T03:00:00Z","updated_at":"2026-12-05T03:00:40Z"}],
	  "meta":{"page_number":1,"page_size":250,"total_pages":1,"total_results":1}}`))
	if err != nil || len(list) != 1 {
		t.Fatalf("list: %v %v", list, err)
	}
	f = list[0].Object.Fax
	if f.Direction != fax.DirectionReceived || f.Status != fax.StatusSuccess || len(f.Recipients) != 0 || f.CallerID != nil ||
		*f.FromNumber != "+15553330000" || *f.ToNumber != "+18005550100" {
		t.Fatalf("received fax: %+v", f)
	}
	p, _ := m.Profile()
	if req, _ := p.ReceivedRequest(time.Time{}); req.Path != "/faxes?filter[direction][eq]=inbound&page[size]=250" {
		t.Errorf("received request %+v", req)
	}
}

// twilio_fax reads the Twilio Fax resource as SignalWire's Compatibility API serves it
// (developer.signalwire.com compatibility-api/rest/entities/faxes): num_pages and price as
// strings, routes with .json, statuses such as no-answer and busy.
func TestShippedTwilioFax(t *testing.T) {
	m, err := Shipped("twilio_fax")
	if err != nil {
		t.Fatal(err)
	}
	base := "/api/laml/2010-04-01/Accounts/b3877c40-da60-4998-90ad-b792e98472ac"
	const sid = "b3877c40-da60-4998-90ad-b792e98472fx"
	for _, c := range []struct{ method, path, route, id string }{
		{"POST", base + "/Faxes.json", RouteSend, ""},
		{"GET", base + "/Faxes/" + sid + ".json", RouteStatus, sid},
		{"GET", base + "/Faxes.json", RouteList, ""},
		{"GET", "/v1/Faxes/FX123", RouteStatus, "FX123"},
	} {
		if route, id, ok := m.Match(c.method, c.path); !ok || route != c.route || id != c.id {
			t.Errorf("%s %s: %q %q %v", c.method, c.path, route, id, ok)
		}
	}
	if m.Callback() != "StatusCallback" {
		t.Errorf("callback field %q", m.Callback())
	}
	// The documented sample fax.
	o := extractOne(t, m, RouteSend, `{"account_sid":"b3877c40-da60-4998-90ad-b792e98472ac","api_version":"v1",
	  "date_created":"2018-11-26T20:00:00Z","date_updated":"2018-11-27T20:00:00Z","direction":"outbound","from":"+13103383454",
	  "media_url":"https://example.com/fax.pdf","media_sid":"b3877c40-da60-4998-90ad-b792e98472me","num_pages":null,"price":null,
	  "price_unit":null,"quality":null,"sid":"`+sid+`","status":"queued","to":"+13104456789","duration":null,
	  "links":{"media":"`+base+`/Faxes/`+sid+`/Media"},"url":"`+base+`/Faxes/`+sid+`"}`).Object
	f := o.Fax
	if f.ID != DeriveID(sid) || f.Tags["fax_sid"] != sid || f.Status != fax.StatusQueued || f.CompletedAt != nil ||
		len(f.Recipients) != 1 || f.Recipients[0].PhoneNumber != "+13104456789" || f.Recipients[0].Status != nil || f.ErrorType != nil {
		t.Fatalf("queued fax: %+v", f)
	}
	o = extractOne(t, m, RouteStatus, `{"sid":"`+sid+`","direction":"outbound","from":"+13103383454","to":"+13104456789",
	  "status":"no-answer","num_pages":"3","price":"0.0210","price_unit":"USD","date_created":"2018-11-26T20:00:00Z",
	  "date_updated":"2018-11-26T20:01:00Z"}`).Object
	f = o.Fax
	if f.Status != fax.StatusFailure || *f.ErrorType != "lineError" || f.NumPages != 3 || f.Cost != 2 ||
		*f.Recipients[0].Status != fax.StatusFailure || *f.CompletedAt != "2018-11-26T20:01:00.000+00:00" {
		t.Fatalf("unanswered fax: %+v", f)
	}
	list, err := m.ExtractWithIDs(RouteList, []byte(`{"faxes":[{"sid":"r1","direction":"inbound","from":"+15553330000",
	  "to":"+18005550100","status":"received","num_pages":"2","media_url":"https://space.example/media/r1.pdf",
	  "date_created":"2018-11-26T20:00:00Z","date_updated":"2018-11-26T20:00:30Z"}],"meta":{"page_size":1000}}`))
	if err != nil || len(list) != 1 {
		t.Fatalf("list: %v %v", list, err)
	}
	f = list[0].Object.Fax
	if f.Direction != fax.DirectionReceived || f.Status != fax.StatusSuccess || len(f.Recipients) != 0 || f.NumPages != 2 ||
		*f.FromNumber != "+15553330000" || *f.ToNumber != "+18005550100" {
		t.Fatalf("received fax: %+v", f)
	}
}
