package module

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/faxhook/caddy-faxhook/module/profile"
	"github.com/faxhook/caddy-faxhook/module/profile/fax"
	"github.com/faxhook/caddy-faxhook/module/render"
	"github.com/faxhook/caddy-faxhook/queue"
)

// receivedJobs records fax 5 received and completed, and returns its jobs to the http URL and
// to the mailto: URL of e's received URLs.
func receivedJobs(t *testing.T, e *engine) (web, mail *queue.Job) {
	t.Helper()
	f := fax.Fax{ID: 5, Direction: fax.DirectionReceived, Status: fax.StatusSuccess, NumPages: 1,
		CreatedAt: "2026-01-01T10:00:00Z", CompletedAt: fax.Str(time.Now().Format(time.RFC3339Nano))}
	record(t, e, &Observation{Faxes: []profile.Object{{Fax: f, Full: true}}})
	for _, j := range allJobs(t, e) {
		if strings.HasPrefix(j.URL, "mailto:") {
			mail = j
		} else {
			web = j
		}
	}
	if web == nil || mail == nil {
		t.Fatalf("jobs %+v", allJobs(t, e))
	}
	return web, mail
}

// A received fax's jobs wait for their PDF (Payload.Prepare); the engine's preparer fetches it
// and renders the payload with it: the file part for the http job, the attachment and its
// mention in the e-mail for the mailto: job.
func TestPrepareFetchesReceivedPDF(t *testing.T) {
	pdf := []byte("%PDF-1.4 received")
	status := http.StatusOK
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v2.1/faxes/5/file" {
			http.NotFound(w, r)
			return
		}
		w.WriteHeader(status)
		w.Write(pdf)
	}))
	defer up.Close()
	urls := []string{"https://hooks.example/received", "mailto:ops@x.test"}
	e := newTestEngine(t, settings{receivedURLs: urls, maxFileSize: 1 << 20,
		poll: &pollSettings{upstream: up.URL + "/v2.1"}})
	web, mail := receivedJobs(t, e)
	for _, j := range []*queue.Job{web, mail} {
		if !j.NeedsPrepare() || j.Prepare != render.PrepareReceivedPDF || j.Mail != nil {
			t.Fatalf("job to %s before preparing: %+v", j.URL, j.Payload)
		}
	}

	p, err := e.delivery.prepare(context.Background(), web)
	if err != nil || len(p.Files) != 1 || p.Files[0].Filename != "fax-5.pdf" || p.Files[0].Name != "file" ||
		string(p.Files[0].Data) != string(pdf) || p.Mail != nil || len(p.Fields) != 2 {
		t.Fatalf("http job prepared: %+v, %v", p, err)
	}
	p, err = e.delivery.prepare(context.Background(), mail)
	if err != nil || len(p.Files) != 1 || p.Mail == nil || !strings.Contains(p.Mail.Text, "attached as fax-5.pdf") {
		t.Fatalf("mailto: job prepared: %+v, %v", p, err)
	}

	status = http.StatusInternalServerError
	if _, err := e.delivery.prepare(context.Background(), web); err == nil || !strings.Contains(err.Error(), "fetching the received fax's PDF") {
		t.Fatalf("upstream failure: %v", err)
	}

	// Too large, or no upstream to fetch from: the webhook goes without the PDF.
	status = http.StatusOK
	e.cfg.Store(&settings{receivedURLs: urls, maxFileSize: 4, poll: &pollSettings{upstream: up.URL + "/v2.1"}})
	if p, err := e.delivery.prepare(context.Background(), web); err != nil || p.Files != nil || len(p.Fields) != 2 {
		t.Fatalf("too large: %+v, %v", p, err)
	}
	e.cfg.Store(&settings{receivedURLs: urls})
	p, err = e.delivery.prepare(context.Background(), mail)
	if err != nil || p.Files != nil || p.Mail == nil || strings.Contains(p.Mail.Text, "attached") {
		t.Fatalf("no upstream: %+v, %v", p, err)
	}
}
