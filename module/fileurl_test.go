package module

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/faxhook/caddy-faxhook/module/profile"
)

// The second step of a document fetch through a profile with file_url: the poll credentials go
// to a document URL on the API's own host, never to one elsewhere (a pre-signed storage URL),
// and a redirect from the API's host to another is followed without them.
func TestFetchFileURLKeepsCredentialsOnTheAPIHost(t *testing.T) {
	m, err := profile.Shipped("telnyx")
	if err != nil {
		t.Fatal(err)
	}
	p, err := m.Profile()
	if err != nil {
		t.Fatal(err)
	}
	loc := p.(profile.FileLocator)
	auth := map[string]string{} // path → Authorization seen
	storage := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth["storage"+r.URL.Path] = r.Header.Get("Authorization") + r.Header.Get("X-Api-Key")
		w.Write([]byte("%PDF-storage"))
	}))
	defer storage.Close()
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth["api"+r.URL.Path] = r.Header.Get("Authorization") + r.Header.Get("X-Api-Key")
		if r.URL.Path == "/media/moved.pdf" {
			http.Redirect(w, r, storage.URL+"/moved.pdf", http.StatusFound)
			return
		}
		w.Write([]byte("%PDF-api"))
	}))
	defer api.Close()
	ps := &pollSettings{upstream: api.URL + "/v2", headers: map[string]string{"Authorization": "Bearer secret-key", "X-Api-Key": "+k"}}
	fetch := func(mediaURL string) (string, error) {
		body := `{"data":{"id":"u1","direction":"inbound","status":"received","media_url":"` + mediaURL + `"}}`
		b, _, err := ps.fetchFileURL(context.Background(), http.DefaultClient, loc, []byte(body), 1<<20)
		return string(b), err
	}
	if b, err := fetch(storage.URL + "/signed.pdf?X-Amz-Signature=abc"); err != nil || b != "%PDF-storage" {
		t.Fatalf("storage URL: %q %v", b, err)
	}
	if a := auth["storage/signed.pdf"]; a != "" {
		t.Errorf("the storage host got Authorization %q", a)
	}
	if b, err := fetch("/media/r1.pdf"); err != nil || b != "%PDF-api" {
		t.Fatalf("relative URL: %q %v", b, err)
	}
	if a := auth["api/media/r1.pdf"]; a != "Bearer secret-key+k" {
		t.Errorf("the API host got Authorization %q, want the poll header", a)
	}
	if b, err := fetch(api.URL + "/media/moved.pdf"); err != nil || b != "%PDF-storage" {
		t.Fatalf("redirect from the API host: %q %v", b, err)
	}
	if a, ok := auth["storage/moved.pdf"]; !ok || a != "" || auth["api/media/moved.pdf"] != "Bearer secret-key+k" {
		t.Errorf("redirect: the API host got %q, the storage host %q (followed %v); want the header on the API host only",
			auth["api/media/moved.pdf"], a, ok)
	}
	if _, err := fetch("file:///etc/passwd"); err == nil || !strings.Contains(err.Error(), "not http(s)") {
		t.Errorf("a file: URL: %v", err)
	}
}

// stubLocator is a profile.FileLocator whose refresh request exists or not.
type stubLocator struct{ refresh bool }

func (stubLocator) FileURL(body []byte) (string, error) { return string(body), nil }
func (l stubLocator) RefreshRequest(id string) (profile.Request, bool) {
	return profile.Request{Method: "POST", Path: "/faxes/" + id + "/refresh"}, l.refresh
}

// An expired document link is refreshed once when the profile can; a link that stays refused,
// or a refresh the API refuses, sends the webhook without the PDF; a server error is retried.
func TestLocateDocument(t *testing.T) {
	status := profile.Request{Method: "GET", Path: "/faxes/u1"}
	for _, c := range []struct {
		name            string
		refresh         bool
		first, refreshd int // the first fetch's and the refresh's answers
		wantDoc         string
		wantRefused     bool
		wantErr         bool
	}{
		{"link works", true, 200, 0, "%PDF-old", false, false},
		{"expired, no refresh", false, 403, 0, "", true, false},
		{"expired, refreshed", true, 403, 200, "%PDF-new", false, false},
		{"expired, refresh refused", true, 410, 404, "", true, false},
		{"expired, refresh fails", true, 403, 502, "", false, true},
		{"document server fails", true, 500, 0, "", false, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			var calls []string
			api := func(r profile.Request) ([]byte, int, error) {
				calls = append(calls, r.Method+" "+r.Path)
				if r.Method == "POST" && c.refreshd != 200 {
					return nil, c.refreshd, errors.New("refresh answered " + http.StatusText(c.refreshd))
				}
				return []byte("new"), 200, nil
			}
			fetch := func(fax []byte) ([]byte, int, error) {
				switch {
				case string(fax) == "new":
					return []byte("%PDF-new"), 200, nil
				case c.first != 200:
					return nil, c.first, errors.New(http.StatusText(c.first))
				}
				return []byte("%PDF-old"), 200, nil
			}
			doc, refused, err := locateDocument(stubLocator{c.refresh}, "u1", status, []byte("old"), api, fetch)
			if string(doc) != c.wantDoc || refused != c.wantRefused || (err != nil) != c.wantErr {
				t.Errorf("got %q refused=%v err=%v; calls %v", doc, refused, err, calls)
			}
			if c.wantDoc == "%PDF-new" && strings.Join(calls, ",") != "POST /faxes/u1/refresh,GET /faxes/u1" {
				t.Errorf("calls %v, want the refresh then the fax read again", calls)
			}
		})
	}
}
