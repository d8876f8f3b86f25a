// Package profile describes the fax service faxhook fronts: which request is which fax API
// call, which request field carries a callback URL, how to find v2.1 fax objects and phone
// numbers in its responses, and which requests ask it about a fax, for its received faxes and
// for a fax's PDF. Both the HTTP handler (to classify requests) and the app (to parse what the
// handler captured and what the poller fetched) use the same Profile.
//
// Two profiles exist: Phaxio v2.1 (PhaxioV21, the default), for services shaped like Phaxio's
// API, and a JSON Mapping (Mapping.Profile) for any other JSON API; mapping.go documents its
// routes, paths, ids, vocabularies and times. The v2.1 domain types (the
// fax object, statuses, event types) live in the sub-package fax.
package profile

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Route is the kind of fax API call a request is. The fax routes are the mapping's route names
// (RouteSend, RouteResend, RouteCancel, RouteStatus, RouteList, RouteFile); RouteNumbers is
// Phaxio's phone number API; RouteNone is every other request.
type Route string

// Routes that only the profile (not the mapping's configuration) knows.
const (
	// RouteNone is a request that is no fax API call; faxhook passes it through untouched.
	RouteNone Route = ""
	// RouteNumbers is GET or POST …/phone_numbers and GET …/phone_numbers/{number}.
	RouteNumbers Route = "phone_numbers"
)

// Creates reports whether a request of route (with method) creates a fax or provisions a
// number, so that its callback URL exists nowhere but in the request.
func (r Route) Creates(method string) bool {
	return r == RouteSend || r == RouteResend || (r == RouteNumbers && method == http.MethodPost)
}

// Request is an upstream request faxhook makes itself: Method and Path, relative to the API
// root the operator configured (poll upstream), with its query string if any.
type Request struct {
	// Method is the HTTP method, e.g. GET.
	Method string
	// Path is the path and query below the API root, e.g. "/faxes/7" or "/faxes?direction=received".
	Path string
}

// Profile answers every question faxhook asks about a fax service's API. Implementations are
// read-only and safe for concurrent use.
type Profile interface {
	// Route classifies a request by its method and URL path, and returns the fax id in the
	// path as the upstream spells it (empty for routes without one).
	Route(method, path string) (route Route, faxID string)
	// CallbackField is the name of the request field (form field, or dotted JSON path) that
	// carries the callback URL of a send, resend or phone-number request.
	CallbackField() string
	// Faxes returns the fax objects in the (decoded) response body of a fax route. An error
	// says why a body yielded no (or not all) faxes; the objects returned beside it are usable.
	Faxes(route Route, body []byte) ([]Object, error)
	// Numbers returns the phone number objects in a RouteNumbers response body.
	Numbers(body []byte) ([]Number, error)
	// StatusRequest is the request that returns the fax with the upstream id faxID.
	StatusRequest(faxID string) (Request, error)
	// ReceivedRequest is the request that lists received faxes, those created after after
	// when the API can filter by time (a profile may list more; the tracker ignores old ones).
	ReceivedRequest(after time.Time) (Request, error)
	// FileRequest is the request that returns the PDF of the fax with the upstream id faxID.
	FileRequest(faxID string) (Request, error)
}

// FileLocator is implemented by a profile whose fax documents have no route of their own
// (Mapping.FileURL): its FileRequest returns the fax object, which names the document's URL.
type FileLocator interface {
	// FileURL returns the URL of the document named in body, the answer to FileRequest:
	// absolute, or relative to the API's host.
	FileURL(body []byte) (string, error)
	// RefreshRequest returns the request that makes the upstream issue a fresh document URL
	// for the fax (Mapping.FileRefresh), and false when the profile has none.
	RefreshRequest(faxID string) (Request, bool)
}

// PhaxioV21 is the profile of a service shaped like Phaxio's API v2.1: routes …/faxes,
// …/faxes/{id}, …/faxes/{id}/resend, …/faxes/{id}/cancel, …/faxes/{id}/file and
// …/phone_numbers[/{number}] under any prefix; envelope {"success","data"}; field callback_url.
var PhaxioV21 Profile = phaxioProfile{}

// phaxioProfile implements Profile for Phaxio v2.1.
type phaxioProfile struct{}

// Route classifies a request by the end of its path, so any API prefix (/v2.1, /api/v2.1)
// works.
func (phaxioProfile) Route(method, path string) (Route, string) {
	p := strings.TrimSuffix(path, "/")
	if i := strings.LastIndex(p, "/phone_numbers"); i >= 0 {
		rest := p[i+len("/phone_numbers"):]
		switch {
		case rest == "" && (method == http.MethodGet || method == http.MethodPost):
			return RouteNumbers, ""
		case strings.Count(rest, "/") == 1 && len(rest) > 1 && method == http.MethodGet:
			return RouteNumbers, ""
		}
		return RouteNone, ""
	}
	i := strings.LastIndex(p, "/faxes")
	if i < 0 {
		return RouteNone, ""
	}
	rest := p[i+len("/faxes"):]
	switch {
	case rest == "":
		switch method {
		case http.MethodPost:
			return RouteSend, ""
		case http.MethodGet:
			return RouteList, ""
		}
	case strings.Count(rest, "/") == 1 && isID(rest[1:]):
		if method == http.MethodGet {
			return RouteStatus, rest[1:]
		}
	case strings.Count(rest, "/") == 2:
		id, action, _ := strings.Cut(rest[1:], "/")
		if !isID(id) || method != http.MethodPost {
			return RouteNone, ""
		}
		switch action {
		case "resend":
			return RouteResend, id
		case "cancel":
			return RouteCancel, id
		}
	}
	return RouteNone, ""
}

// isID reports whether s is a Phaxio fax id: 1 to 19 decimal digits.
func isID(s string) bool {
	if s == "" || len(s) > 19 {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// CallbackField is Phaxio's callback_url.
func (phaxioProfile) CallbackField() string { return DefaultCallbackField }

// Faxes extracts fax objects from a Phaxio envelope (see Phaxio).
func (phaxioProfile) Faxes(_ Route, body []byte) ([]Object, error) { return Phaxio(body) }

// Numbers extracts phone number objects from a Phaxio envelope (see PhoneNumbers).
func (phaxioProfile) Numbers(body []byte) ([]Number, error) { return PhoneNumbers(body) }

// StatusRequest is GET /faxes/{id}.
func (phaxioProfile) StatusRequest(faxID string) (Request, error) {
	if faxID == "" {
		return Request{}, fmt.Errorf("phaxio profile: status request needs a fax id")
	}
	return Request{Method: http.MethodGet, Path: "/faxes/" + url.PathEscape(faxID)}, nil
}

// ReceivedRequest is GET /faxes?direction=received&created_after=…&per_page=1000.
func (phaxioProfile) ReceivedRequest(after time.Time) (Request, error) {
	q := url.Values{"direction": {"received"}, "created_after": {after.Format(time.RFC3339)}, "per_page": {"1000"}}
	return Request{Method: http.MethodGet, Path: "/faxes?" + q.Encode()}, nil
}

// FileRequest is GET /faxes/{id}/file.
func (phaxioProfile) FileRequest(faxID string) (Request, error) {
	if faxID == "" {
		return Request{}, fmt.Errorf("phaxio profile: file request needs a fax id")
	}
	return Request{Method: http.MethodGet, Path: "/faxes/" + url.PathEscape(faxID) + "/file"}, nil
}

// Profile returns the profile that this mapping describes, after checking it (Validate).
func (m *Mapping) Profile() (Profile, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	if m.FileURL != "" {
		return locatingProfile{mappedProfile{m}}, nil
	}
	return mappedProfile{m}, nil
}

// locatingProfile is the profile of a mapping with file_url: its FileRequest is the status
// request, whose answer names the document's URL.
type locatingProfile struct{ mappedProfile }

// FileRequest is the status route with the fax's id: its answer names the document's URL.
func (p locatingProfile) FileRequest(faxID string) (Request, error) {
	return p.request(RouteStatus, faxID, "")
}

// FileURL reads the document's URL at the mapping's file_url (see Mapping.FileURLOf).
func (p locatingProfile) FileURL(body []byte) (string, error) { return p.m.FileURLOf(body) }

// RefreshRequest is the mapping's file_refresh route with the fax's id.
func (p locatingProfile) RefreshRequest(faxID string) (Request, bool) {
	if p.m.FileRefresh == "" {
		return Request{}, false
	}
	method, path, err := p.m.fill("file_refresh", p.m.FileRefresh, faxID)
	if err != nil { // Validate refused such a mapping
		return Request{}, false
	}
	return Request{Method: method, Path: path}, true
}

// mappedProfile implements Profile for a JSON Mapping.
type mappedProfile struct{ m *Mapping }

// Route matches the mapping's route patterns.
func (p mappedProfile) Route(method, path string) (Route, string) {
	name, id, ok := p.m.Match(method, path)
	if !ok {
		return RouteNone, ""
	}
	return Route(name), id
}

// CallbackField is the mapping's callback_field.
func (p mappedProfile) CallbackField() string { return p.m.Callback() }

// Faxes converts the fax objects at the route's configured place (see Mapping.Extract).
func (p mappedProfile) Faxes(route Route, body []byte) ([]Object, error) {
	return p.m.Extract(string(route), body)
}

// Numbers finds nothing: a mapping describes no phone number API.
func (mappedProfile) Numbers([]byte) ([]Number, error) { return nil, nil }

// StatusRequest is the status route with the fax's id.
func (p mappedProfile) StatusRequest(faxID string) (Request, error) {
	return p.request(RouteStatus, faxID, "")
}

// ReceivedRequest is the list route with the mapping's list_received query.
func (p mappedProfile) ReceivedRequest(time.Time) (Request, error) {
	return p.request(RouteList, "", p.m.ListReceived)
}

// FileRequest is the file route with the fax's id.
func (p mappedProfile) FileRequest(faxID string) (Request, error) {
	return p.request(RouteFile, faxID, "")
}

func (p mappedProfile) request(route, faxID, query string) (Request, error) {
	method, path, err := p.m.Path(route, faxID)
	if err != nil {
		return Request{}, err
	}
	if query != "" {
		path += "?" + query
	}
	return Request{Method: method, Path: path}, nil
}

// UpstreamIDOrID returns how the upstream spells the id of an object: its UpstreamID when the
// profile recorded one, else the decimal id.
func (o Object) UpstreamIDOrID() string {
	if o.UpstreamID != "" {
		return o.UpstreamID
	}
	return strconv.FormatInt(o.Fax.ID, 10)
}
