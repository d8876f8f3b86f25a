package module

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"time"

	"github.com/faxhook/caddy-faxhook/module/profile/fax"
	"github.com/faxhook/caddy-faxhook/module/render"
	"github.com/faxhook/caddy-faxhook/queue"
)

// testWebhookResult is the answer of POST /faxhook/test-webhook: what the receiver made of a
// sample webhook.
type testWebhookResult struct {
	URL        string  `json:"url"` // without credentials
	OK         bool    `json:"ok"`  // the receiver accepted it (2xx)
	Status     int     `json:"status,omitempty"`
	DurationMS float64 `json:"duration_ms"`
	Error      string  `json:"error,omitempty"`
	Body       string  `json:"body,omitempty"` // the start of the receiver's answer
}

// testWebhook answers POST /faxhook/test-webhook?url=URL: it sends, at once and only once (not
// through the queue), a signed fax_completed of a sample fax (id 1, is_test true, tag
// faxhook_test=true) to URL, rendered and signed as the global settings say (webhook version,
// token, Standard Webhooks), and tells how the receiver answered: a user checks a receiver
// and its token before real faxes flow.
func (a *adminAPI) testWebhook(w http.ResponseWriter, r *http.Request) error {
	u := r.URL.Query().Get("url")
	if err := ValidateURL(u); err != nil {
		return apiErrorf(http.StatusBadRequest, "url %q: %w", queue.RedactURL(u), err)
	}
	if render.IsMail(u) {
		return apiErrorf(http.StatusBadRequest, "url: a test webhook goes to an http or https URL, not mailto:")
	}
	e, err := a.engine(r)
	if err != nil {
		return err
	}
	cfg := e.cfg.Load()
	now := a.clock().UTC()
	f := fax.Fax{ID: 1, Direction: fax.DirectionSent, NumPages: 1, Status: fax.StatusSuccess, IsTest: true,
		CreatedAt:   now.Add(-time.Minute).Format("2006-01-02T15:04:05.000-07:00"),
		CompletedAt: fax.Str(now.Format("2006-01-02T15:04:05.000-07:00")),
		Tags:        map[string]string{"faxhook_test": "true"},
		Recipients: []fax.Recipient{{PhoneNumber: "+15550100000", Status: fax.Str(fax.StatusSuccess),
			CompletedAt: fax.Str(now.Format("2006-01-02T15:04:05.000-07:00"))}}}
	f.Normalize()
	faxJSON, err := faxPayload(&f)
	if err != nil {
		return apiErrorf(http.StatusInternalServerError, "rendering the sample fax: %w", err)
	}
	ev := render.Event{FaxID: f.ID, Type: fax.EventFaxCompleted, FaxJSON: faxJSON, Version: cfg.version, Fax: &f}
	ev = ev.For(u)
	fields, err := ev.WireFields()
	if err != nil {
		return apiErrorf(http.StatusInternalServerError, "rendering the sample webhook: %w", err)
	}
	payload, err := ev.Payload(u, fields)
	if err != nil {
		return apiErrorf(http.StatusInternalServerError, "rendering the sample webhook: %w", err)
	}
	var id [8]byte
	rand.Read(id[:])
	j := &queue.Job{ID: "test-" + hex.EncodeToString(id[:]), EventID: "test-" + hex.EncodeToString(id[:]),
		Meta: ev.Meta(), URL: u, Payload: payload, CreatedAt: now, DueAt: now}
	ctx, cancel := context.WithTimeout(r.Context(), cfg.timeout+5*time.Second)
	defer cancel()
	start := time.Now()
	res := e.delivery.send(ctx, j)
	red := redactorFor(cfg, u)
	out := testWebhookResult{URL: queue.RedactURL(u), OK: res.Err == nil, Status: res.Status,
		DurationMS: float64(time.Since(start).Microseconds()) / 1000, Body: red.text(res.Body)}
	if res.Err != nil {
		out.Error = red.text(res.Err.Error())
	}
	return writeJSON(w, http.StatusOK, out)
}
