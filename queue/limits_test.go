package queue_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/faxhook/caddy-faxhook/queue"
	"github.com/faxhook/caddy-faxhook/queue/httpsend"
)

// hanging is a receiver that holds every request until released (or the client gives up), and
// records how many it held at once.
type hanging struct {
	mu      sync.Mutex
	cur     int
	max     int
	total   int
	release chan struct{}
	srv     *httptest.Server
}

func newHanging(t *testing.T) *hanging {
	h := &hanging{release: make(chan struct{})}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body) // the server notices a client going away only after this
		h.mu.Lock()
		h.cur++
		h.total++
		h.max = max(h.max, h.cur)
		h.mu.Unlock()
		defer func() { h.mu.Lock(); h.cur--; h.mu.Unlock() }()
		select {
		case <-h.release:
			w.WriteHeader(http.StatusNoContent)
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(func() { h.open(); h.srv.Close() })
	return h
}

// open lets held and future requests through.
func (h *hanging) open() {
	h.mu.Lock()
	defer h.mu.Unlock()
	select {
	case <-h.release:
	default:
		close(h.release)
	}
}

func (h *hanging) stats() (cur, maxSeen, total int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.cur, h.max, h.total
}

// waitHeld waits (real time) until the receiver holds n requests.
func (h *hanging) waitHeld(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if cur, _, _ := h.stats(); cur == n {
			return
		}
		time.Sleep(2 * time.Millisecond)
	}
	cur, _, _ := h.stats()
	t.Fatalf("receiver holds %d requests, want %d", cur, n)
}

func enqueueAll(t *testing.T, st queue.Store, prefix, url string, n int, due time.Time) []string {
	t.Helper()
	var ids []string
	err := st.Update(func(tx queue.Tx) error {
		for i := range n {
			id := fmt.Sprintf("%s%03d", prefix, i)
			ids = append(ids, id)
			if _, err := tx.Enqueue(&queue.Job{ID: id, EventID: id, URL: url, Meta: queue.Labels{{Name: "event_type", Value: "fax_completed"}},
				Payload: queue.Payload{Fields: []queue.Field{{Name: "event_type", Value: "fax_completed"}}}, CreatedAt: due, DueAt: due}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

// leasedCount is how many jobs d holds leased that the store still has pending (a job whose
// outcome was just stored leaves Leases a moment later).
func leasedCount(t *testing.T, st queue.Store, d *queue.Dispatcher) int {
	t.Helper()
	n := 0
	for id := range d.Leases() {
		if job(t, st, id).State == queue.StatePending {
			n++
		}
	}
	return n
}

// A hanging receiver gets at most PerHost attempts at once, its other jobs stay pending, and the
// jobs of another receiver, due after all of them, are delivered meanwhile.
func TestPerHostLimitDoesNotBlockOtherHosts(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := queue.NewFakeClock(t0.Add(time.Minute))
	slow := newHanging(t)
	_, fast := newHits(clock, func(int) int { return 200 })
	defer fast.Close()
	st := openStore(t, t.TempDir())
	slowIDs := enqueueAll(t, st, "slow", slow.srv.URL+"/hook", 40, t0)
	fastIDs := enqueueAll(t, st, "fast", fast.URL+"/hook", 10, t0.Add(time.Second))

	d := queue.NewDispatcher(st, httpsend.New(httpsend.Options{Timeout: time.Minute}),
		queue.Options{Clock: clock, Workers: 8, PerHost: 3})
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	defer d.Stop()

	for _, id := range fastIDs {
		waitState(t, st, id, queue.StateDelivered)
	}
	slow.waitHeld(t, 3)
	// Jobs enqueued while the slow receiver is saturated pass it too.
	late := enqueueAll(t, st, "late", fast.URL+"/late", 5, clock.Now())
	d.Wake()
	for _, id := range late {
		waitState(t, st, id, queue.StateDelivered)
	}
	// 3 attempts under way and at most 3 more leased ahead; the rest stays pending.
	if n := leasedCount(t, st, d); n > 6 || n < 3 {
		t.Fatalf("%d jobs leased while the slow receiver holds 3, want 3 to 6", n)
	}
	pending := 0
	for _, id := range slowIDs {
		if job(t, st, id).State == queue.StatePending {
			pending++
		}
	}
	if pending < 34 {
		t.Fatalf("%d slow jobs pending, want at least 34", pending)
	}
	// Due lists the pending jobs of the saturated destination, earliest first, within its limit.
	err := st.View(func(tx queue.Tx) error {
		due, err := tx.Due(clock.Now(), 5)
		if err != nil {
			return err
		}
		if len(due) != 5 {
			return fmt.Errorf("Due(limit 5) returned %d jobs", len(due))
		}
		for i := 1; i < len(due); i++ {
			if due[i].DueAt.Before(due[i-1].DueAt) || due[i].State != queue.StatePending {
				return fmt.Errorf("Due returned %s (%s) after %s", due[i].ID, due[i].State, due[i-1].ID)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	slow.open()
	for _, id := range slowIDs {
		waitState(t, st, id, queue.StateDelivered)
	}
	if _, maxSeen, total := slow.stats(); maxSeen != 3 || total != 40 {
		t.Fatalf("slow receiver: %d requests at most at once (want 3), %d in all (want 40)", maxSeen, total)
	}
}

// Jobs set aside for a busy destination survive a restart and are delivered by the next run.
func TestSetAsideJobsSurviveRestart(t *testing.T) {
	now := time.Now()
	dir := t.TempDir()
	slow := newHanging(t)
	st, err := queue.OpenBadger(dir, queue.BadgerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// Enough jobs for the first scan to pass over more than it may before setting jobs aside.
	ids := enqueueAll(t, st, "r", slow.srv.URL, 80, now.Add(-time.Minute))
	d := queue.NewDispatcher(st, httpsend.New(httpsend.Options{}), queue.Options{PerHost: 2})
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	slow.waitHeld(t, 2)
	d.Stop() // the two attempts are cancelled; their jobs stay leased
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	slow.open()

	st = openStore(t, dir)
	var next time.Time
	var ok bool
	if err := st.View(func(tx queue.Tx) (err error) { next, ok, err = tx.NextDue(); return }); err != nil || !ok || next.After(now) {
		t.Fatalf("NextDue after restart = %s, %v, %v; want a time already past", next, ok, err)
	}
	d = queue.NewDispatcher(st, httpsend.New(httpsend.Options{}), queue.Options{PerHost: 2})
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	defer d.Stop()
	for _, id := range ids {
		waitState(t, st, id, queue.StateDelivered)
	}
	if _, maxSeen, _ := slow.stats(); maxSeen > 2 {
		t.Fatalf("%d requests at once, PerHost is 2", maxSeen)
	}
}

// The dispatcher attempts at most Workers jobs at once and holds at most as many again leased
// ahead, whatever the backlog, and Due never loads more than its limit.
func TestBacklogStaysOnDisk(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := queue.NewFakeClock(t0)
	st := openStore(t, t.TempDir())
	slow := newHanging(t)
	enqueueAll(t, st, "b", slow.srv.URL, 200, t0)
	enqueueAll(t, st, "later", slow.srv.URL, 5, t0.Add(time.Hour))
	err := st.View(func(tx queue.Tx) error {
		for _, limit := range []int{0, 1, 10, 500} {
			due, err := tx.Due(t0, limit)
			if err != nil {
				return err
			}
			if want := min(limit, 200); len(due) != want {
				return fmt.Errorf("Due(limit %d) returned %d jobs, want %d", limit, len(due), want)
			}
		}
		next, ok, err := tx.NextDue()
		if err != nil || !ok || !next.Equal(t0) {
			return fmt.Errorf("NextDue = %s, %v, %v; want %s", next, ok, err, t0)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	d := queue.NewDispatcher(st, httpsend.New(httpsend.Options{}), queue.Options{Clock: clock, Workers: 3, PerHost: 100})
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	defer d.Stop()
	slow.waitHeld(t, 3)
	if n := leasedCount(t, st, d); n != 6 {
		t.Fatalf("%d jobs leased with 3 workers, want 3 attempted and 3 ahead", n)
	}
	slow.open()
	for i := range 200 {
		waitState(t, st, fmt.Sprintf("b%03d", i), queue.StateDelivered)
	}
	if _, maxSeen, _ := slow.stats(); maxSeen > 3 {
		t.Fatalf("%d attempts at once with 3 workers", maxSeen)
	}
}

// A Retry-After longer than the ladder's next step postpones the retry; a shorter one does not
// shorten it.
func TestRetryAfterDelaysRetry(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := queue.NewFakeClock(t0)
	var mu sync.Mutex
	n := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		n++
		hit := n
		mu.Unlock()
		switch hit {
		case 1:
			w.Header().Set("Retry-After", "3600")
			w.WriteHeader(http.StatusServiceUnavailable)
		case 2:
			w.Header().Set("Retry-After", "60")
			w.WriteHeader(http.StatusTooManyRequests)
		default:
			w.WriteHeader(http.StatusOK)
		}
	}))
	defer srv.Close()
	st, d := startDispatcher(t, clock)
	enqueue(t, d, "ra", srv.URL, t0)

	j := waitAttempts(t, st, "ra", 1)
	if want := t0.Add(time.Hour); !j.DueAt.Equal(want) {
		t.Fatalf("after a 503 with Retry-After: 3600 the retry is due %s, want %s (not the ladder's 5m)", j.DueAt, want)
	}
	clock.Advance(5 * time.Minute) // the ladder's step: nothing is due yet
	clock.Advance(55 * time.Minute)
	j = waitAttempts(t, st, "ra", 2)
	if got := j.Attempts[1].At; !got.Equal(t0.Add(time.Hour)) {
		t.Fatalf("second attempt at %s, want %s", got, t0.Add(time.Hour))
	}
	if want := t0.Add(time.Hour + 10*time.Minute); !j.DueAt.Equal(want) {
		t.Fatalf("after a 429 with Retry-After: 60 the retry is due %s, want the ladder's %s", j.DueAt, want)
	}
	clock.Advance(10 * time.Minute)
	j = waitState(t, st, "ra", queue.StateDelivered)
	if len(j.Attempts) != 3 || !j.Attempts[2].At.Equal(t0.Add(time.Hour+10*time.Minute)) {
		t.Fatalf("attempt log %+v", j.Attempts)
	}
}

// waitAttempts polls the store (real time) until job id has n attempts stored.
func waitAttempts(t *testing.T, st queue.Store, id string, n int) *queue.Job {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if j := job(t, st, id); len(j.Attempts) >= n {
			return j
		}
		time.Sleep(2 * time.Millisecond)
	}
	t.Fatalf("job %s never had %d attempts", id, n)
	return nil
}

// Leasing jobs too big to lease together in one transaction still delivers them all.
func TestLeaseSplitsTooBigTransactions(t *testing.T) {
	h, srv := newHits(queue.SystemClock{}, func(int) int { return 200 })
	defer srv.Close()
	st := openStore(t, t.TempDir())
	pdf := make([]byte, 700<<10) // ~930 KB of JSON each: inline in the LSM tree, not the value log
	now := time.Now()
	for i := range 4 { // 3.7 MB in all: more than one transaction takes (2.4 MB)
		id := fmt.Sprintf("big%d", i)
		err := st.Update(func(tx queue.Tx) error {
			_, err := tx.Enqueue(&queue.Job{ID: id, EventID: id, URL: srv.URL, DueAt: now,
				Payload: queue.Payload{Files: []queue.File{{Name: "file", Filename: "fax.pdf", Data: pdf}}}})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	d := queue.NewDispatcher(st, httpsend.New(httpsend.Options{}), queue.Options{Workers: 4, PerHost: 4})
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	defer d.Stop()
	h.wait(t, 4)
	for i := range 4 {
		waitState(t, st, fmt.Sprintf("big%d", i), queue.StateDelivered)
	}
}

func TestDestination(t *testing.T) {
	for in, want := range map[string]string{
		"https://Example.com/hook?x=1":          "https://example.com",
		"https://example.com:443/a":             "https://example.com",
		"https://example.com:8443/a":            "https://example.com:8443",
		"http://user:p%40ss@Example.com:80/a#f": "http://example.com",
		"http://127.0.0.1:9000":                 "http://127.0.0.1:9000",
		"http://[::1]:9000/x":                   "http://[::1]:9000",
		"mailto:Ops@Example.org?subject=x":      "mailto:example.org",
		"mailto:a@x.org,b@y.org":                "mailto:x.org",
		"not a url":                             "not a url",
	} {
		if got := queue.Destination(in); got != want {
			t.Errorf("Destination(%q) = %q, want %q", in, got, want)
		}
	}
}
