package console

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// The admin API's views, as the console reads them (see module/admin.go).
type (
	attempt struct {
		N          int       `json:"n"`
		At         time.Time `json:"at"`
		DurationMS float64   `json:"duration_ms"`
		Status     int       `json:"status"`
		Error      string    `json:"error"`
		Body       string    `json:"body"`
	}
	summary struct {
		ID          string     `json:"id"`
		EventType   string     `json:"event_type"`
		FaxID       int64      `json:"fax_id"`
		Account     string     `json:"account"`
		URL         string     `json:"url"`
		State       string     `json:"state"`
		CreatedAt   time.Time  `json:"created_at"`
		DueAt       *time.Time `json:"due_at"`
		FinishedAt  *time.Time `json:"finished_at"`
		Attempts    int        `json:"attempts"`
		LastAttempt *attempt   `json:"last_attempt"`
	}
	field struct {
		Name  string `json:"name"`
		Value string `json:"value"`
	}
	detail struct {
		summary
		Fields     []field   `json:"fields"`
		AttemptLog []attempt `json:"attempt_log"`
		Files      []struct {
			Name     string `json:"name"`
			Filename string `json:"filename"`
			Size     int    `json:"size"`
		} `json:"files"`
	}
	listing struct {
		Deliveries []summary `json:"deliveries"`
		NextCursor string    `json:"next_cursor"`
	}
	stats struct {
		Storage                    string         `json:"storage"`
		DispatcherRunning          bool           `json:"dispatcher_running"`
		Jobs                       map[string]int `json:"jobs"`
		OldestUnfinishedAgeSeconds float64        `json:"oldest_unfinished_age_seconds"`
		TrackedFaxes               int            `json:"tracked_faxes"`
		FaxesInFlight              int            `json:"faxes_in_flight"`
		StorageDegraded            bool           `json:"storage_degraded"`
	}
)

// States in the order the console lists them.
var states = []string{"pending", "leased", "waiting", "dead", "delivered"}

// chartHours is how far back the overview's chart goes, in chartBuckets bars.
const (
	chartHours   = 3
	chartBuckets = 36
	chartLimit   = 1000 // finished deliveries read per outcome for the chart
)

// overview shows the queue at a glance: jobs per state, the oldest unfinished job's age,
// deliveries per 5 minutes by outcome over the last hours, and the latest failures.
func (c *Console) overview(w http.ResponseWriter, r *http.Request) error {
	var st stats
	if err := c.call(r, http.MethodGet, "/faxhook/stats", &st); err != nil {
		return err
	}
	now := time.Now()
	since := now.Add(-chartHours * time.Hour)
	bar := chartHours * time.Hour / chartBuckets
	type bucket struct{ Delivered, Dead int }
	buckets := make([]bucket, chartBuckets)
	for _, state := range []string{"delivered", "dead"} {
		var l listing
		path := fmt.Sprintf("/faxhook/deliveries?state=%s&since=%s&limit=%d", state, url.QueryEscape(since.UTC().Format(time.RFC3339)), chartLimit)
		if err := c.call(r, http.MethodGet, path, &l); err != nil {
			return err
		}
		for _, d := range l.Deliveries {
			if d.FinishedAt == nil || d.FinishedAt.Before(since) {
				continue
			}
			i := min(int(d.FinishedAt.Sub(since)/bar), chartBuckets-1)
			if state == "dead" {
				buckets[i].Dead++
			} else {
				buckets[i].Delivered++
			}
		}
	}
	peak := 1
	for _, b := range buckets {
		peak = max(peak, b.Delivered+b.Dead)
	}
	type rect struct {
		X, Y, H int
		Outcome string
		Title   string
	}
	const height = 120
	var rects []rect
	for i, b := range buckets {
		at := since.Add(time.Duration(i) * bar).UTC().Format("15:04")
		hd := b.Delivered * height / peak
		hx := b.Dead * height / peak
		if hd > 0 {
			rects = append(rects, rect{X: i * 10, Y: height - hd, H: hd, Outcome: "delivered", Title: fmt.Sprintf("%s: %d delivered", at, b.Delivered)})
		}
		if hx > 0 {
			rects = append(rects, rect{X: i * 10, Y: height - hd - hx, H: hx, Outcome: "dead", Title: fmt.Sprintf("%s: %d dead", at, b.Dead)})
		}
	}
	var failures listing
	if err := c.call(r, http.MethodGet, "/faxhook/deliveries?state=dead&limit=10", &failures); err != nil {
		return err
	}
	return c.render(w, r, "overview", map[string]any{
		"Title": "Overview", "Stats": st, "States": states, "Rects": rects, "Peak": peak,
		"ChartFrom": since.UTC().Format("15:04"), "ChartTo": now.UTC().Format("15:04"), "Failures": failures.Deliveries,
	})
}

// deliveries is the delivery log: filters, a page of deliveries, a link to the next page.
func (c *Console) deliveries(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	f := url.Values{}
	for _, k := range []string{"state", "event_type", "fax_id", "host", "account", "since", "cursor"} {
		if v := strings.TrimSpace(q.Get(k)); v != "" {
			f.Set(k, v)
		}
	}
	var l listing
	err := c.call(r, http.MethodGet, "/faxhook/deliveries?"+f.Encode(), &l)
	problem := ""
	if err != nil {
		problem = err.Error() // a bad filter: shown above the empty list
	}
	next := ""
	if l.NextCursor != "" {
		n := url.Values{}
		for k, v := range f {
			n[k] = v
		}
		n.Set("cursor", l.NextCursor)
		next = Prefix + "deliveries?" + n.Encode()
	}
	return c.render(w, r, "deliveries", map[string]any{
		"Title": "Delivery log", "Deliveries": l.Deliveries, "Next": next, "Problem": problem,
		"State": f.Get("state"), "EventType": f.Get("event_type"), "FaxID": f.Get("fax_id"),
		"Host": f.Get("host"), "Since": f.Get("since"), "States": states,
		"Flash": q.Get("done"),
	})
}

// delivery shows one delivery: its event's fields as sent, the URL (redacted by the admin
// API) and every attempt.
func (c *Console) delivery(w http.ResponseWriter, r *http.Request, id string) error {
	var d detail
	if err := c.call(r, http.MethodGet, "/faxhook/deliveries/"+url.PathEscape(id), &d); err != nil {
		return err
	}
	return c.render(w, r, "delivery", map[string]any{"Title": "Delivery " + d.ID, "D": d, "Flash": r.URL.Query().Get("done")})
}

// retry makes a delivery due now.
func (c *Console) retry(w http.ResponseWriter, r *http.Request, id string) error {
	err := c.call(r, http.MethodPost, "/faxhook/deliveries/"+url.PathEscape(id)+"/retry", nil)
	return c.acted(w, r, Prefix+"deliveries/"+url.PathEscape(id), "retry scheduled", err)
}

// replay replays the dead deliveries since a time (form field since, RFC 3339 or the
// browser's datetime-local, UTC; empty: all).
func (c *Console) replay(w http.ResponseWriter, r *http.Request) error {
	since := strings.TrimSpace(r.PostForm.Get("since"))
	t := time.Unix(0, 0)
	if since != "" {
		var err error
		if t, err = time.Parse(time.RFC3339, since); err != nil {
			if t, err = time.Parse("2006-01-02T15:04", since); err != nil {
				return c.acted(w, r, Prefix+"deliveries", "", fmt.Errorf("since %q: want a time such as 2026-01-02T15:04 (UTC)", since))
			}
		}
	}
	var out struct {
		Replayed int `json:"replayed"`
	}
	err := c.call(r, http.MethodPost, "/faxhook/replay?since="+url.QueryEscape(t.UTC().Format(time.RFC3339)), &out)
	return c.acted(w, r, Prefix+"deliveries", fmt.Sprintf("%d dead deliveries replayed", out.Replayed), err)
}

// acted answers an action: to the console's script (Accept: application/json) its outcome as
// JSON; to a plain form post a redirect back to back, the outcome in ?done=.
func (c *Console) acted(w http.ResponseWriter, r *http.Request, back, done string, err error) error {
	msg, status := done, http.StatusOK
	if err != nil {
		msg, status = err.Error(), http.StatusBadRequest
	}
	if strings.Contains(r.Header.Get("Accept"), "application/json") {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, werr := fmt.Fprintf(w, "{\"ok\":%t,\"message\":%q}\n", err == nil, msg)
		return werr
	}
	http.Redirect(w, r, back+"?done="+url.QueryEscape(msg), http.StatusSeeOther)
	return nil
}

// The admin API's views of tracked faxes.
type (
	faxSummary struct {
		ID           int64     `json:"id"`
		Direction    string    `json:"direction"`
		Status       string    `json:"status"`
		Known        bool      `json:"known"`
		Completed    bool      `json:"completed"`
		FirstSeen    time.Time `json:"first_seen"`
		CompletedAt  *string   `json:"completed_at"`
		CallbackURLs []string  `json:"callback_urls"`
	}
	faxDetail struct {
		faxSummary
		InFlight bool           `json:"in_flight"`
		Pages    map[string]int `json:"pages"`
		Fax      map[string]any `json:"fax"`
	}
)

// faxes lists the tracked faxes, a page at a time.
func (c *Console) faxes(w http.ResponseWriter, r *http.Request) error {
	var l struct {
		Faxes      []faxSummary `json:"faxes"`
		NextCursor string       `json:"next_cursor"`
	}
	path := "/faxhook/faxes"
	if cur := r.URL.Query().Get("cursor"); cur != "" {
		path += "?cursor=" + url.QueryEscape(cur)
	}
	if err := c.call(r, http.MethodGet, path, &l); err != nil {
		return err
	}
	next := ""
	if l.NextCursor != "" {
		next = Prefix + "faxes?cursor=" + url.QueryEscape(l.NextCursor)
	}
	return c.render(w, r, "faxes", map[string]any{"Title": "Faxes", "Faxes": l.Faxes, "Next": next})
}

// fax shows one tracked fax, its last known state and the timeline of its webhooks: each
// event's deliveries, in the order they were enqueued.
func (c *Console) fax(w http.ResponseWriter, r *http.Request, id string) error {
	var d faxDetail
	if err := c.call(r, http.MethodGet, "/faxhook/faxes/"+url.PathEscape(id), &d); err != nil {
		return err
	}
	var l listing
	if err := c.call(r, http.MethodGet, "/faxhook/deliveries?limit=1000&fax_id="+url.QueryEscape(id), &l); err != nil {
		return err
	}
	slices.SortStableFunc(l.Deliveries, func(a, b summary) int { return a.CreatedAt.Compare(b.CreatedAt) })
	return c.render(w, r, "fax", map[string]any{"Title": "Fax " + id, "F": d, "Deliveries": l.Deliveries})
}

// testPage offers sending a sample webhook to a URL.
func (c *Console) testPage(w http.ResponseWriter, r *http.Request) error {
	return c.render(w, r, "test", map[string]any{"Title": "Test webhook", "Flash": r.URL.Query().Get("done")})
}

// sendTest sends a signed sample fax_completed to the form's URL through the admin API and
// reports how the receiver answered.
func (c *Console) sendTest(w http.ResponseWriter, r *http.Request) error {
	var res struct {
		URL        string  `json:"url"`
		OK         bool    `json:"ok"`
		Status     int     `json:"status"`
		DurationMS float64 `json:"duration_ms"`
		Error      string  `json:"error"`
		Body       string  `json:"body"`
	}
	u := strings.TrimSpace(r.PostForm.Get("url"))
	err := c.call(r, http.MethodPost, "/faxhook/test-webhook?url="+url.QueryEscape(u), &res)
	msg := ""
	switch {
	case err != nil:
	case res.OK:
		msg = fmt.Sprintf("Accepted: %s answered HTTP %d in %.0f ms to a signed sample fax_completed (fax 1, is_test).", res.URL, res.Status, res.DurationMS)
	default:
		err = fmt.Errorf("not accepted: %s answered %s in %.0f ms: %s", res.URL, statusText(res.Status), res.DurationMS, strings.TrimSpace(res.Error+" "+res.Body))
	}
	return c.acted(w, r, Prefix+"test", msg, err)
}

// statusText is "HTTP n", or "nothing" when no answer came.
func statusText(status int) string {
	if status == 0 {
		return "nothing"
	}
	return fmt.Sprintf("HTTP %d", status)
}

// settingsPage shows the effective webhook settings, the app's and each account's, with where
// each value comes from; never a secret's value.
func (c *Console) settingsPage(w http.ResponseWriter, r *http.Request) error {
	var s struct {
		Global         webhookSettings   `json:"global"`
		Accounts       []webhookSettings `json:"accounts"`
		RetrySchedule  []string          `json:"retry_schedule"`
		LearnedNumbers []number          `json:"learned_numbers"`
	}
	if err := c.call(r, http.MethodGet, "/faxhook/settings", &s); err != nil {
		return err
	}
	return c.render(w, r, "settings", map[string]any{"Title": "Settings", "S": s, "Last": lastChangeView(),
		"SentText": strings.Join(s.Global.SentURLs, "\n"), "ReceivedText": strings.Join(s.Global.ReceivedURLs, "\n")})
}

// The admin API's view of webhook settings (GET /faxhook/settings).
type (
	webhookSettings struct {
		Account        string            `json:"account"`
		SentURLs       []string          `json:"sent_urls"`
		ReceivedURLs   []string          `json:"received_urls"`
		Numbers        []number          `json:"numbers"`
		Inflight       bool              `json:"inflight"`
		WebhookVersion string            `json:"webhook_version"`
		TokenSet       bool              `json:"token_set"`
		Source         map[string]string `json:"source"`
	}
	number struct {
		Number string   `json:"number"`
		URLs   []string `json:"urls"`
		Source string   `json:"source"`
	}
)
