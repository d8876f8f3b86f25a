package profile

import (
	"strings"
	"testing"

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
