package handler

import (
	"net/http/httptest"
	"testing"
)

func TestMatch(t *testing.T) {
	cases := []struct {
		method, path string
		want         route
	}{
		{"POST", "/v2.1/faxes", routeSend},
		{"POST", "/api/v2.1/faxes/", routeSend},
		{"GET", "/v2.1/faxes", routeList},
		{"GET", "/v2.1/faxes/123", routeGet},
		{"POST", "/v2.1/faxes/123/resend", routeResend},
		{"POST", "/v2.1/faxes/123/cancel", routeCancel},
		{"GET", "/v2.1/faxes/123/file", routeNone},
		{"DELETE", "/v2.1/faxes/123", routeNone},
		{"GET", "/v2.1/faxes/abc", routeNone},
		{"GET", "/v2.1/phone_numbers", routeNumbers},
		{"POST", "/v2.1/phone_numbers", routeNumbers},
		{"GET", "/v2.1/phone_numbers/+15551230001", routeNumbers},
		{"DELETE", "/v2.1/phone_numbers/+15551230001", routeNone},
		{"GET", "/", routeNone},
		{"POST", "/v2.1/faxes/1/2/resend", routeNone},
	}
	for _, c := range cases {
		if got := match(httptest.NewRequest(c.method, c.path, nil)); got != c.want {
			t.Errorf("%s %s: route %d, want %d", c.method, c.path, got, c.want)
		}
	}
}
