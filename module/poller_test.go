package module

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/faxhook/caddy-faxhook/module/profile"
)

// testMapping is a small mapping of a service whose fax ids are not integers.
func testMapping(t *testing.T) profile.Profile {
	t.Helper()
	m := &profile.Mapping{
		Send: "POST /api/jobs", Status: "GET /api/jobs/{id}", List: "GET /api/jobs",
		File: "GET /api/jobs/{id}/pdf", Object: "job", ListObjects: "items", SendID: "job_id",
		ListReceived: "kind=in",
		Fields: profile.FieldMap{ID: "job_id", Status: "state", Direction: "kind", CompletedAt: "done",
			ToNumber: "line"},
		StatusMap:    map[string]string{"RUNNING": "inprogress", "OK": "success"},
		DirectionMap: map[string]string{"out": "sent", "in": "received"},
	}
	p, err := m.Profile()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// The poller and the PDF fetch ask a mapped service through its routes, with the fax's id as
// the service spells it (kept from the send response), and with the configured headers.
func TestPollerAsksThroughTheProfile(t *testing.T) {
	var mu sync.Mutex
	var asked []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		asked = append(asked, r.Method+" "+r.URL.RequestURI()+" "+r.Header.Get("Authorization"))
		mu.Unlock()
		switch r.URL.Path {
		case "/root/api/jobs/job-7":
			w.Write([]byte(`{"job":{"job_id":"job-7","state":"RUNNING","kind":"out"}}`))
		case "/root/api/jobs":
			w.Write([]byte(`{"items":[{"job_id":"in-1","state":"OK","kind":"in","done":"2099-01-01T00:00:00Z","line":"+15550001111"}]}`))
		case "/root/api/jobs/in-1/pdf":
			w.Write([]byte("%PDF-1.4"))
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	prof := testMapping(t)
	poll := &pollSettings{upstream: srv.URL + "/root", headers: map[string]string{"Authorization": "Bearer t"},
		interval: time.Second, concurrency: 2}
	e := newTestEngine(t, settings{poll: poll, profile: prof, maxFileSize: 1 << 20})

	sent, _ := prof.Faxes(profile.RouteSend, []byte(`{"job_id":"job-7"}`))
	if len(sent) != 1 || sent[0].UpstreamID != "job-7" {
		t.Fatalf("send response: %+v", sent)
	}
	record(t, e, &Observation{Faxes: sent})
	cfg := e.cfg.Load()
	live, err := e.tracker.live()
	if err != nil {
		t.Fatal(err)
	}
	sched := newPollSched(time.Second)
	sched.sync(live, time.Now())
	batch, err := e.poll.ask(cfg, srv.Client(), sched, sched.take(time.Now().Add(time.Minute), 10))
	if err != nil {
		t.Fatal(err)
	}
	if errs := e.poll.listReceived(context.Background(), cfg, srv.Client(), time.Time{}, &batch); len(errs) > 0 {
		t.Fatal(errs)
	}
	if err := e.poll.record(batch); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	got := append([]string(nil), asked...)
	mu.Unlock()
	want := map[string]bool{"GET /root/api/jobs/job-7 Bearer t": true, "GET /root/api/jobs?kind=in Bearer t": true}
	if len(got) != len(want) || !want[got[0]] || !want[got[1]] {
		t.Fatalf("the poller asked %q, want %v", got, want)
	}
	in := profile.DeriveID("in-1")
	pdf, _, err := e.poll.fetchPDF(context.Background(), e.cfg.Load(), in)
	if err != nil || string(pdf) != "%PDF-1.4" {
		t.Fatalf("fetching the received fax's PDF: %q, %v", pdf, err)
	}
	if uid, err := e.tracker.upstreamID(sent[0].Fax.ID); err != nil || uid != "job-7" {
		t.Fatalf("upstream id of the sent fax: %q, %v", uid, err)
	}
}
