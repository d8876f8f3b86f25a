package profile

import (
	"net/http/httptest"
	"testing"
	"time"
)

func TestPhaxioRoute(t *testing.T) {
	cases := []struct {
		method, path string
		want         Route
		id           string
	}{
		{"POST", "/v2.1/faxes", RouteSend, ""},
		{"POST", "/api/v2.1/faxes/", RouteSend, ""},
		{"GET", "/v2.1/faxes", RouteList, ""},
		{"GET", "/v2.1/faxes/123", RouteStatus, "123"},
		{"POST", "/v2.1/faxes/123/resend", RouteResend, "123"},
		{"POST", "/v2.1/faxes/123/cancel", RouteCancel, "123"},
		{"GET", "/v2.1/faxes/123/file", RouteNone, ""},
		{"DELETE", "/v2.1/faxes/123", RouteNone, ""},
		{"GET", "/v2.1/faxes/abc", RouteNone, ""},
		{"GET", "/v2.1/phone_numbers", RouteNumbers, ""},
		{"POST", "/v2.1/phone_numbers", RouteNumbers, ""},
		{"GET", "/v2.1/phone_numbers/+15551230001", RouteNumbers, ""},
		{"DELETE", "/v2.1/phone_numbers/+15551230001", RouteNone, ""},
		{"GET", "/", RouteNone, ""},
		{"POST", "/v2.1/faxes/1/2/resend", RouteNone, ""},
	}
	for _, c := range cases {
		r := httptest.NewRequest(c.method, c.path, nil)
		if got, id := PhaxioV21.Route(r.Method, r.URL.Path); got != c.want || id != c.id {
			t.Errorf("%s %s: route %q id %q, want %q %q", c.method, c.path, got, id, c.want, c.id)
		}
	}
}

func TestPhaxioRequests(t *testing.T) {
	after := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, c := range []struct {
		req  func() (Request, error)
		want string
	}{
		{func() (Request, error) { return PhaxioV21.StatusRequest("42") }, "/faxes/42"},
		{func() (Request, error) { return PhaxioV21.FileRequest("42") }, "/faxes/42/file"},
		{func() (Request, error) { return PhaxioV21.ReceivedRequest(after) },
			"/faxes?created_after=2026-01-02T03%3A04%3A05Z&direction=received&per_page=1000"},
	} {
		r, err := c.req()
		if err != nil || r.Method != "GET" || r.Path != c.want {
			t.Errorf("request = %+v, %v; want GET %s", r, err, c.want)
		}
	}
	if _, err := PhaxioV21.StatusRequest(""); err == nil {
		t.Error("a status request without an id was built")
	}
}

func TestMappedProfile(t *testing.T) {
	m := testMapping()
	m.ListReceived = "kind=inbound&limit=100"
	p, err := m.Profile()
	if err != nil {
		t.Fatal(err)
	}
	if rt, id := p.Route("GET", "/v1/api/fax/jobs/job-7"); rt != RouteStatus || id != "job-7" {
		t.Errorf("route = %q %q, want status job-7", rt, id)
	}
	if rt, _ := p.Route("DELETE", "/api/fax/jobs/7"); rt != RouteNone {
		t.Errorf("DELETE routed to %q", rt)
	}
	if p.CallbackField() != m.Callback() {
		t.Errorf("callback field %q, want %q", p.CallbackField(), m.Callback())
	}
	for _, c := range []struct {
		req  func() (Request, error)
		want string
	}{
		{func() (Request, error) { return p.StatusRequest("job 7") }, "GET /api/fax/jobs/job%207"},
		{func() (Request, error) { return p.FileRequest("7") }, "GET /api/fax/jobs/7/document"},
		{func() (Request, error) { return p.ReceivedRequest(time.Now()) }, "GET /api/fax/jobs?kind=inbound&limit=100"},
	} {
		r, err := c.req()
		if err != nil || r.Method+" "+r.Path != c.want {
			t.Errorf("request = %+v, %v; want %s", r, err, c.want)
		}
	}
	m.ListReceived = "?kind=inbound"
	if _, err := m.Profile(); err == nil {
		t.Error("list_received with a leading ? validated")
	}
}
