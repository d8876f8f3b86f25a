package module

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/faxhook/caddy-faxhook/module/profile"
	"github.com/faxhook/caddy-faxhook/module/profile/fax"
	"github.com/faxhook/caddy-faxhook/queue"
)

// startEngine opens a real engine on a temp Badger dir, in the package pool as Caddy would, and
// starts its dispatcher with s. The engine is destructed when the test ends.
func startEngine(t *testing.T, s settings) *engine {
	t.Helper()
	dir := t.TempDir()
	e, err := loadEngine(storageSpec{key: dir, dir: dir, syncWrites: false, minFree: 0}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if _, err := engines.Delete(dir); err != nil {
			t.Errorf("releasing the engine: %v", err)
		}
	})
	if err := e.start(s, zap.NewNop()); err != nil {
		t.Fatal(err)
	}
	return e
}

// completeFax records a sent fax with its callback URL, then its successful completion: one
// fax_completed job per URL.
func completeFax(t *testing.T, e *engine, id int64, urls ...string) {
	t.Helper()
	done := fax.Fax{ID: id, Direction: fax.DirectionSent, Status: fax.StatusSuccess, IsTest: true,
		CompletedAt: fax.Str(time.Now().Format("2006-01-02T15:04:05.000-07:00")),
		Recipients:  []fax.Recipient{{PhoneNumber: "+15550100000", Status: fax.Str(fax.StatusSuccess)}}}
	for _, o := range []*Observation{
		{Faxes: []profile.Object{{Fax: fax.Fax{ID: id}}}, CallbackURLs: urls},
		{Faxes: []profile.Object{{Fax: done, Full: true}}},
	} {
		if err := e.tracker.record([]*Observation{o}); err != nil {
			t.Fatal(err)
		}
	}
}

// jobOf returns the job of fax id.
func jobOf(t *testing.T, e *engine, faxID int64) *queue.Job {
	t.Helper()
	var found *queue.Job
	err := e.store.View(func(tx queue.Tx) error {
		return tx.Jobs(func(j *queue.Job) bool {
			if faxIDOf(j) == faxID {
				found = j
			}
			return found == nil
		})
	})
	if err != nil || found == nil {
		t.Fatalf("no job for fax %d (%v)", faxID, err)
	}
	return found
}

// waitState waits until job id is in state.
func waitState(t *testing.T, e *engine, id, state string) *queue.Job {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		var j *queue.Job
		err := e.store.View(func(tx queue.Tx) (err error) { j, err = tx.Job(id); return err })
		if err == nil && j.State == state {
			return j
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s: state %v (err %v), want %s", id, j, err, state)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// adminClient calls the admin route's handler directly, rendering returned errors the way
// Caddy's admin server does, and keeps every response body.
type adminClient struct {
	t      *testing.T
	api    *adminAPI
	bodies []string
}

func newAdminClient(t *testing.T, source func() map[string]*engine) *adminClient {
	api := &adminAPI{log: zap.NewNop(), engines: source}
	return &adminClient{t: t, api: api}
}

// call returns the status and body of method target.
func (c *adminClient) call(method, target string) (int, []byte) {
	c.t.Helper()
	routes := c.api.Routes()
	if len(routes) != 1 || !strings.HasPrefix(target, routes[0].Pattern) {
		c.t.Fatalf("no route for %s", target)
	}
	rec := httptest.NewRecorder()
	err := routes[0].Handler.ServeHTTP(rec, httptest.NewRequest(method, target, nil))
	status, body := rec.Code, rec.Body.Bytes()
	if err != nil {
		var apiErr caddy.APIError
		if !errors.As(err, &apiErr) {
			c.t.Fatalf("%s %s: error %v is not a caddy.APIError", method, target, err)
		}
		if apiErr.HTTPStatus == 0 || apiErr.Message == "" {
			c.t.Fatalf("%s %s: APIError without status or message: %+v", method, target, apiErr)
		}
		status = apiErr.HTTPStatus
		body, _ = json.Marshal(apiErr)
	}
	c.bodies = append(c.bodies, string(body))
	return status, body
}

// ok calls and decodes a 200 answer into v.
func (c *adminClient) ok(method, target string, v any) {
	c.t.Helper()
	status, body := c.call(method, target)
	if status != http.StatusOK {
		c.t.Fatalf("%s %s: %d %s", method, target, status, body)
	}
	reflect.ValueOf(v).Elem().SetZero() // omitted fields must not keep the previous answer's values
	if err := json.Unmarshal(body, v); err != nil {
		c.t.Fatalf("%s %s: decoding %s: %v", method, target, body, err)
	}
}

// fails checks that method target answers status with a message containing want.
func (c *adminClient) fails(method, target string, status int, want string) {
	c.t.Helper()
	got, body := c.call(method, target)
	var e struct {
		Error string `json:"error"`
	}
	if got != status || json.Unmarshal(body, &e) != nil || !strings.Contains(e.Error, want) {
		c.t.Fatalf("%s %s: %d %s; want %d with an error containing %q", method, target, got, body, status, want)
	}
}

// noSecrets fails if any response so far carries a secret.
func (c *adminClient) noSecrets(secrets ...string) {
	c.t.Helper()
	for _, b := range c.bodies {
		for _, s := range secrets {
			if strings.Contains(b, s) {
				c.t.Fatalf("a response contains the secret %q: %s", s, b)
			}
		}
	}
}

// failingReceiver answers 500 (with a body quoting the token and the Basic credentials, as a
// careless receiver might) until ok is set, then 200.
func failingReceiver(t *testing.T, ok *atomic.Bool) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !ok.Load() {
			u, p, _ := r.BasicAuth()
			w.WriteHeader(http.StatusInternalServerError)
			fmt.Fprintf(w, "signature did not verify with token s3cret-token; credentials %s:%s", u, p)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestAdminDeadDeliveryListedShownRetriedAndReplayed(t *testing.T) {
	start := time.Now().Add(-time.Minute)
	var receiverOK atomic.Bool
	srv := failingReceiver(t, &receiverOK)
	hook := "http://user:pass@" + srv.Listener.Addr().String() + "/hook"
	e := startEngine(t, settings{token: "s3cret-token", schedule: []time.Duration{10 * time.Millisecond}, timeout: 5 * time.Second, workers: 4})
	c := newAdminClient(t, nil) // the package pool, as in Caddy

	completeFax(t, e, 101, hook)
	completeFax(t, e, 102, hook)
	j1, j2 := jobOf(t, e, 101), jobOf(t, e, 102)
	waitState(t, e, j1.ID, queue.StateDead)
	waitState(t, e, j2.ID, queue.StateDead)

	// A third job, due in an hour, for the listings of unfinished jobs.
	future := &queue.Job{ID: "ffff-future", EventID: "103.fax_completed", Meta: metaOf(103, fax.EventFaxCompleted),
		URL: "https://hooks.example.com/x", Payload: queue.Payload{Fields: []queue.Field{{Name: "event_type", Value: fax.EventFaxCompleted}}},
		CreatedAt: time.Now().Add(-time.Hour), DueAt: time.Now().Add(time.Hour)}
	if err := e.store.Update(func(tx queue.Tx) error { _, err := tx.Enqueue(future); return err }); err != nil {
		t.Fatal(err)
	}

	// The dead deliveries are listed, by finish time.
	var list deliveryList
	c.ok("GET", "/faxhook/deliveries?state=dead", &list)
	if len(list.Deliveries) != 2 || list.NextCursor != "" {
		t.Fatalf("dead deliveries = %+v", list)
	}
	d := list.Deliveries[0]
	if d.State != queue.StateDead || d.Attempts != 2 || d.FinishedAt == nil || d.LastAttempt == nil || d.LastAttempt.Status != 500 {
		t.Fatalf("dead delivery summary = %+v", d)
	}
	if !strings.Contains(d.URL, "REDACTED@") || strings.Contains(d.URL, "user") {
		t.Fatalf("url not redacted: %s", d.URL)
	}

	// Filters.
	for _, tc := range []struct {
		query string
		want  []string
	}{
		{"state=dead&fax_id=102", []string{j2.ID}},
		{"state=dead&event_type=fax_completed&host=127.0.0.1", []string{j1.ID, j2.ID}},
		{"state=dead&host=" + url.QueryEscape(srv.Listener.Addr().String()), []string{j1.ID, j2.ID}},
		{"state=dead&host=hooks.example.com", nil},
		{"state=dead&since=" + url.QueryEscape(time.Now().Add(time.Hour).Format(time.RFC3339)), nil},
		{"state=pending", []string{future.ID}},
		{"state=pending&host=HOOKS.example.com", []string{future.ID}},
		{"state=waiting", nil},
		{"host=hooks.example.com", []string{future.ID}},
		{"fax_id=101", []string{j1.ID}},
		{"state=delivered", nil},
	} {
		var l deliveryList
		c.ok("GET", "/faxhook/deliveries?"+tc.query, &l)
		var got []string
		for _, d := range l.Deliveries {
			got = append(got, d.ID)
		}
		if !sameSet(got, tc.want) {
			t.Errorf("?%s: got %v, want %v", tc.query, got, tc.want)
		}
	}

	// Paging: dead by finish time, all jobs by ID; every job exactly once.
	for _, q := range []string{"state=dead&", ""} {
		seen := map[string]bool{}
		cursor := ""
		for page := 0; ; page++ {
			var l deliveryList
			c.ok("GET", "/faxhook/deliveries?"+q+"limit=1&cursor="+url.QueryEscape(cursor), &l)
			if page > 5 || len(l.Deliveries) != 1 {
				t.Fatalf("?%s page %d: %+v", q, page, l)
			}
			if seen[l.Deliveries[0].ID] {
				t.Fatalf("?%s: %s listed twice", q, l.Deliveries[0].ID)
			}
			seen[l.Deliveries[0].ID] = true
			if cursor = l.NextCursor; cursor == "" {
				break
			}
		}
		want := 3
		if q != "" {
			want = 2
		}
		if len(seen) != want {
			t.Fatalf("?%s: paged through %d jobs, want %d", q, len(seen), want)
		}
	}

	// One delivery, with its event and full attempt log.
	var det deliveryDetail
	c.ok("GET", "/faxhook/deliveries/"+j1.ID, &det)
	if det.ID != j1.ID || det.FaxID != 101 || det.EventType != fax.EventFaxCompleted || len(det.AttemptLog) != 2 {
		t.Fatalf("detail = %+v", det)
	}
	for i, a := range det.AttemptLog {
		if a.N != i+1 || a.Status != 500 || !strings.Contains(a.Error, "500") || !strings.Contains(a.Body, "REDACTED") || a.At.IsZero() {
			t.Fatalf("attempt %d = %+v", i+1, a)
		}
	}
	if len(det.Fields) != 2 || det.Fields[0].Name != "fax" || !strings.Contains(det.Fields[0].Value, `"id":101`) {
		t.Fatalf("fields = %+v", det.Fields)
	}

	// Retry now: delivered by the real dispatcher.
	receiverOK.Store(true)
	c.ok("POST", "/faxhook/deliveries/"+j1.ID+"/retry", &det)
	if det.State != queue.StatePending || len(det.ReplayedAt) != 1 {
		t.Fatalf("after retry: %+v", det)
	}
	waitState(t, e, j1.ID, queue.StateDelivered)
	c.ok("GET", "/faxhook/deliveries/"+j1.ID, &det)
	if det.State != queue.StateDelivered || len(det.AttemptLog) != 3 || det.AttemptLog[2].Status != 200 || det.LadderBase != 2 {
		t.Fatalf("after delivery: %+v", det)
	}

	// Replay every dead delivery since the start of the test.
	var rr replayResult
	c.ok("POST", "/faxhook/replay?since="+url.QueryEscape(start.Format(time.RFC3339))+"&storage="+url.QueryEscape(e.dir), &rr)
	if rr.Replayed != 1 {
		t.Fatalf("replayed %d, want 1", rr.Replayed)
	}
	waitState(t, e, j2.ID, queue.StateDelivered)
	c.ok("POST", "/faxhook/replay?since=1970-01-01T00:00:00Z", &rr)
	if rr.Replayed != 0 {
		t.Fatalf("second replay: %d", rr.Replayed)
	}

	// Statistics.
	var st statsView
	c.ok("GET", "/faxhook/stats", &st)
	if st.Storage != e.dir || !st.DispatcherRunning || st.TrackedFaxes != 2 || st.FaxesInFlight != 0 ||
		st.Jobs[queue.StateDelivered] != 2 || st.Jobs[queue.StateDead] != 0 || st.Jobs[queue.StatePending] != 1 ||
		st.OldestUnfinishedAgeSeconds < 3500 {
		t.Fatalf("stats = %+v", st)
	}

	// Tracked faxes.
	var fl faxList
	c.ok("GET", "/faxhook/faxes", &fl)
	if len(fl.Faxes) != 2 || fl.NextCursor != "" {
		t.Fatalf("faxes = %+v", fl)
	}
	c.ok("GET", "/faxhook/faxes?limit=1", &fl)
	if len(fl.Faxes) != 1 || fl.NextCursor == "" {
		t.Fatalf("first page of faxes = %+v", fl)
	}
	first := fl.Faxes[0].ID
	c.ok("GET", "/faxhook/faxes?limit=1&cursor="+fl.NextCursor, &fl)
	if len(fl.Faxes) != 1 || fl.NextCursor != "" || fl.Faxes[0].ID == first {
		t.Fatalf("second page of faxes = %+v", fl)
	}
	var fd faxDetail
	c.ok("GET", "/faxhook/faxes/101", &fd)
	if fd.ID != 101 || !fd.Known || !fd.Completed || fd.Status != fax.StatusSuccess || fd.Fax == nil || fd.Fax.ID != 101 ||
		len(fd.CallbackURLs) != 1 || !strings.Contains(fd.CallbackURLs[0], "REDACTED@") {
		t.Fatalf("fax detail = %+v", fd)
	}

	c.noSecrets("s3cret-token", "user:pass", "pass@", ":pass")
}

func TestAdminBadInput(t *testing.T) {
	e := startEngine(t, settings{})
	c := newAdminClient(t, nil)
	completeFax(t, e, 5) // tracked, no URL, no job
	pendingCursor := encodeCursor("j", "zzz")
	for _, tc := range []struct {
		method, target string
		status         int
		want           string
	}{
		{"GET", "/faxhook/deliveries?state=bogus", 400, `state "bogus": want one of pending, waiting, leased, dead, delivered`},
		{"GET", "/faxhook/deliveries?fax_id=abc", 400, `fax_id "abc"`},
		{"GET", "/faxhook/deliveries?event_type=fax_done", 400, `event_type "fax_done": want one of`},
		{"GET", "/faxhook/deliveries?limit=0", 400, "limit \"0\": want an integer from 1 to 1000"},
		{"GET", "/faxhook/deliveries?limit=x", 400, "limit"},
		{"GET", "/faxhook/deliveries?limit=5000", 400, "limit"},
		{"GET", "/faxhook/deliveries?cursor=%21%21", 400, "not a cursor of this listing"},
		{"GET", "/faxhook/deliveries?state=dead&cursor=" + pendingCursor, 400, "not a cursor of this listing"},
		{"GET", "/faxhook/deliveries?state=pending&since=2026-01-01T00:00:00Z", 400, "since applies to state=dead and state=delivered"},
		{"GET", "/faxhook/deliveries?state=dead&since=yesterday", 400, `since "yesterday": want an RFC 3339 time`},
		{"GET", "/faxhook/deliveries/nope", 404, "not found"},
		{"POST", "/faxhook/deliveries/nope/retry", 404, "not found"},
		{"GET", "/faxhook/deliveries/nope/retry", 405, "use POST"},
		{"POST", "/faxhook/deliveries", 405, "use GET"},
		{"POST", "/faxhook/replay", 400, "since is required"},
		{"POST", "/faxhook/replay?since=2026-13-01", 400, `since "2026-13-01"`},
		{"GET", "/faxhook/replay?since=2026-01-01T00:00:00Z", 405, "use POST"},
		{"GET", "/faxhook/faxes/abc", 400, `fax id "abc": want an integer`},
		{"GET", "/faxhook/faxes/999", 404, "not found"},
		{"GET", "/faxhook/faxes?cursor=" + pendingCursor, 400, "not a cursor"},
		{"GET", "/faxhook/nothing", 404, "no faxhook admin endpoint at /faxhook/nothing"},
		{"GET", "/faxhook/stats?storage=/no/such/dir", 404, "no running faxhook app uses storage /no/such/dir"},
	} {
		c.fails(tc.method, tc.target, tc.status, tc.want)
	}

	// A job waiting behind an earlier one of its chain is not retried ahead of it.
	for _, id := range []string{"chain-1", "chain-2"} {
		j := &queue.Job{ID: id, EventID: id, Meta: metaOf(6, fax.EventTransmittingPage), URL: "https://hooks.example.com/x",
			Chain: "6\x00https://hooks.example.com/x", CreatedAt: time.Now(), DueAt: time.Now().Add(time.Hour)}
		if err := e.store.Update(func(tx queue.Tx) error { _, err := tx.Enqueue(j); return err }); err != nil {
			t.Fatal(err)
		}
	}
	var l deliveryList
	c.ok("GET", "/faxhook/deliveries?state=waiting", &l)
	if len(l.Deliveries) != 1 || l.Deliveries[0].ID != "chain-2" || l.Deliveries[0].DueAt != nil {
		t.Fatalf("waiting = %+v", l)
	}
	c.fails("POST", "/faxhook/deliveries/chain-2/retry", http.StatusConflict, "waits behind an earlier delivery")

	var fd faxDetail
	c.ok("GET", "/faxhook/faxes/5", &fd)
	if fd.ID != 5 || len(fd.CallbackURLs) != 0 || !fd.Completed {
		t.Fatalf("fax 5 = %+v", fd)
	}
}

func TestAdminEngineSelection(t *testing.T) {
	none := newAdminClient(t, func() map[string]*engine { return nil })
	none.fails("GET", "/faxhook/stats", http.StatusServiceUnavailable, "faxhook is not running")

	a, b := startEngine(t, settings{}), startEngine(t, settings{})
	two := newAdminClient(t, func() map[string]*engine { return map[string]*engine{a.dir: a, b.dir: b} })
	two.fails("GET", "/faxhook/stats", http.StatusBadRequest, "choose one with ?storage=")
	var st statsView
	two.ok("GET", "/faxhook/stats?storage="+url.QueryEscape(b.dir), &st)
	if st.Storage != b.dir {
		t.Fatalf("stats of %s, want %s", st.Storage, b.dir)
	}

	// A store closed under the admin API (the app stopped meanwhile) is 503, not a panic.
	c := newAdminClient(t, func() map[string]*engine { return map[string]*engine{a.dir: a} })
	a.store.Close()
	c.fails("GET", "/faxhook/deliveries", http.StatusServiceUnavailable, "closed")
	c.fails("POST", "/faxhook/replay?since=2026-01-01T00:00:00Z", http.StatusServiceUnavailable, "closed")
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	m := map[string]int{}
	for _, x := range a {
		m[x]++
	}
	for _, x := range b {
		if m[x]--; m[x] < 0 {
			return false
		}
	}
	return true
}

// A job whose attempt is under way is pending in the store (the dispatcher leases in memory),
// but operators see it as leased: in its detail, in listings by state, in the statistics; and
// retrying it is refused with 409 rather than starting a second attempt.
func TestAdminShowsJobsUnderWayAsLeased(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })
	e := startEngine(t, settings{timeout: time.Minute})
	completeFax(t, e, 401, srv.URL+"/hook")
	id := jobOf(t, e, 401).ID
	deadline := time.Now().Add(10 * time.Second)
	for len(e.delivery.leases()) == 0 && time.Now().Before(deadline) {
		time.Sleep(2 * time.Millisecond)
	}
	if s := jobOf(t, e, 401).State; s != queue.StatePending {
		t.Fatalf("stored state %s, want pending", s)
	}

	c := newAdminClient(t, nil)
	var det deliveryDetail
	c.ok("GET", "/faxhook/deliveries/"+id, &det)
	if det.State != queue.StateLeased || det.LeaseUntil == nil || !det.LeaseUntil.After(time.Now()) || det.DueAt != nil {
		t.Fatalf("detail of the job under way: state %s, lease_until %v, due_at %v", det.State, det.LeaseUntil, det.DueAt)
	}
	for query, want := range map[string]int{"state=leased": 1, "state=pending": 0} {
		var l deliveryList
		c.ok("GET", "/faxhook/deliveries?"+query+"&storage="+url.QueryEscape(e.dir), &l)
		if len(l.Deliveries) != want {
			t.Errorf("?%s lists %d deliveries, want %d", query, len(l.Deliveries), want)
		}
	}
	var st statsView
	c.ok("GET", "/faxhook/stats?storage="+url.QueryEscape(e.dir), &st)
	if st.Jobs[queue.StateLeased] != 1 || st.Jobs[queue.StatePending] != 0 {
		t.Fatalf("stats jobs = %v, want 1 leased and 0 pending", st.Jobs)
	}
	c.fails("POST", "/faxhook/deliveries/"+id+"/retry?storage="+url.QueryEscape(e.dir), http.StatusConflict, "an attempt is under way")
}

// A host filter matches host and host:port of an http(s) URL (credentials never), the domains
// of a mailto: URL's To addresses, and nothing of an invalid URL.
func TestURLHosts(t *testing.T) {
	for raw, want := range map[string][]string{
		"https://u:p@Hooks.example.com:8443/x?y=1":         {"Hooks.example.com", "Hooks.example.com:8443"},
		"http://[::1]:9000/x":                              {"::1", "[::1]:9000"},
		"mailto:a@x.test,b@Y.test?to=c@z.test&cc=d@w.test": {"x.test", "Y.test", "z.test"},
		"mailto:nobody":                                    nil,
		"ftp://example.com/x":                              nil,
	} {
		if got := urlHosts(raw); !slices.Equal(got, want) {
			t.Errorf("urlHosts(%q) = %q, want %q", raw, got, want)
		}
	}
}
