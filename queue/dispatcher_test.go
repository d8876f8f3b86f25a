package queue_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/faxhook/caddy-faxhook/queue"
	"github.com/faxhook/caddy-faxhook/queue/httpsend"
)

// hits is a loopback webhook receiver whose answers a test scripts.
type hits struct {
	mu     sync.Mutex
	times  []time.Time // virtual time of each hit
	clock  queue.Clock
	answer func(n int) int
	ch     chan int
}

func newHits(clock queue.Clock, answer func(n int) int) (*hits, *httptest.Server) {
	h := &hits{clock: clock, answer: answer, ch: make(chan int, 100)}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.mu.Lock()
		h.times = append(h.times, h.clock.Now())
		n := len(h.times)
		h.mu.Unlock()
		w.WriteHeader(h.answer(n))
		h.ch <- n
	}))
	return h, srv
}

func (h *hits) wait(t *testing.T, n int) {
	t.Helper()
	for {
		select {
		case got := <-h.ch:
			if got >= n {
				return
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("receiver hit %d never came", n)
		}
	}
}

func openStore(t *testing.T, dir string) *queue.Badger {
	t.Helper()
	st, err := queue.OpenBadger(dir, queue.BadgerOptions{SyncWrites: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// startDispatcher starts a dispatcher with the HTTP sender on clock over a new store; both stop
// when the test ends.
func startDispatcher(t *testing.T, clock queue.Clock) (*queue.Badger, *queue.Dispatcher) {
	t.Helper()
	st := openStore(t, t.TempDir())
	d := queue.NewDispatcher(st, httpsend.New(httpsend.Options{}), queue.Options{Clock: clock})
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Stop)
	return st, d
}

func enqueue(t *testing.T, d *queue.Dispatcher, id, url string, due time.Time) {
	t.Helper()
	err := d.Update(func(tx queue.Tx) error {
		_, err := tx.Enqueue(&queue.Job{ID: id, EventID: id, URL: url,
			Meta:      queue.Labels{{Name: "fax_id", Value: "1"}, {Name: "event_type", Value: "fax_completed"}},
			Payload:   queue.Payload{Fields: []queue.Field{{Name: "fax", Value: `{"id":1}`}, {Name: "event_type", Value: "fax_completed"}}},
			CreatedAt: due, DueAt: due})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

func job(t *testing.T, st queue.Store, id string) *queue.Job {
	t.Helper()
	var j *queue.Job
	if err := st.View(func(tx queue.Tx) (err error) { j, err = tx.Job(id); return }); err != nil {
		t.Fatal(err)
	}
	return j
}

// waitState polls the store (real time) until the job reaches state.
func waitState(t *testing.T, st queue.Store, id, state string) *queue.Job {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if j := job(t, st, id); j.State == state {
			return j
		}
		time.Sleep(2 * time.Millisecond)
	}
	t.Fatalf("job %s never reached %s (now %s)", id, state, job(t, st, id).State)
	return nil
}

func TestRetriesAtLadderOffsetsThenDelivered(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := queue.NewFakeClock(t0)
	h, srv := newHits(clock, func(n int) int {
		if n <= 2 {
			return 500
		}
		return 200
	})
	defer srv.Close()
	st := openStore(t, t.TempDir())
	d := queue.NewDispatcher(st, httpsend.New(httpsend.Options{Token: "tok"}), queue.Options{Clock: clock})
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	defer d.Stop()
	enqueue(t, d, "j1", srv.URL+"/hook", t0)

	h.wait(t, 1)
	waitAttempts(t, st, "j1", 1)
	clock.Advance(5 * time.Minute)
	h.wait(t, 2)
	waitAttempts(t, st, "j1", 2)
	clock.Advance(10 * time.Minute)
	h.wait(t, 3)
	j := waitState(t, st, "j1", queue.StateDelivered)

	want := []time.Duration{0, 5 * time.Minute, 15 * time.Minute}
	for i, a := range j.Attempts {
		if got := a.At.Sub(t0); got != want[i] {
			t.Errorf("attempt %d at +%s, want +%s", i+1, got, want[i])
		}
	}
	if len(j.Attempts) != 3 || j.Attempts[0].Status != 500 || j.Attempts[2].Status != 200 || j.Attempts[2].Error != "" {
		t.Fatalf("attempt log = %+v", j.Attempts)
	}
}

func TestAlwaysFailingDiesAfter17Attempts(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := queue.NewFakeClock(t0)
	h, srv := newHits(clock, func(int) int { return 503 })
	defer srv.Close()
	st, d := startDispatcher(t, clock)
	enqueue(t, d, "dead1", srv.URL, t0)
	var offset time.Duration
	for n := 1; n <= 16; n++ {
		h.wait(t, n)
		waitAttempts(t, st, "dead1", n)
		step := queue.DefaultSchedule[n-1]
		offset += step
		clock.Advance(step)
	}
	h.wait(t, 17)
	j := waitState(t, st, "dead1", queue.StateDead)
	if len(j.Attempts) != 17 {
		t.Fatalf("%d attempts, want 17", len(j.Attempts))
	}
	if got := j.Attempts[16].At.Sub(t0); got != offset || offset != 65*time.Minute+72*time.Hour {
		t.Fatalf("last attempt at +%s, want +%s (73h05m)", got, offset)
	}
	clock.Advance(24 * time.Hour)
	time.Sleep(50 * time.Millisecond)
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.times) != 17 {
		t.Fatalf("a dead job was attempted again: %d hits", len(h.times))
	}
}

func TestEnqueueIsIdempotent(t *testing.T) {
	st := openStore(t, t.TempDir())
	now := time.Now()
	for i, want := range []bool{true, false} {
		err := st.Update(func(tx queue.Tx) error {
			ok, err := tx.Enqueue(&queue.Job{ID: "same", DueAt: now})
			if ok != want {
				t.Errorf("enqueue #%d reported %v", i+1, ok)
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

// Leases live in memory: a job whose attempt was under way when the process died (here: the
// store closed under the dispatcher, so no outcome could be stored) is pending and due for the
// next run, which delivers it.
func TestJobsLeasedAtACrashAreDueAtStart(t *testing.T) {
	dir := t.TempDir()
	st, err := queue.OpenBadger(dir, queue.BadgerOptions{SyncWrites: true})
	if err != nil {
		t.Fatal(err)
	}
	slow := newHanging(t)
	now := time.Now()
	if err := st.Update(func(tx queue.Tx) error {
		_, err := tx.Enqueue(&queue.Job{ID: "x", URL: slow.srv.URL, DueAt: now})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	d := queue.NewDispatcher(st, httpsend.New(httpsend.Options{}), queue.Options{})
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	slow.waitHeld(t, 1)
	if len(d.Leases()) != 1 {
		t.Fatalf("leases = %v, want x", d.Leases())
	}
	st.Close()
	d.Stop()

	clock := queue.SystemClock{}
	h, srv := newHits(clock, func(int) int { return 204 })
	defer srv.Close()
	st = openStore(t, dir)
	if err := st.Update(func(tx queue.Tx) error {
		j, err := tx.Job("x")
		if err != nil {
			return err
		}
		if j.State != queue.StatePending || j.DueAt.After(time.Now()) || len(j.Attempts) != 0 {
			t.Errorf("after the crash x is %s due %s with %d attempts, want pending, due, none", j.State, j.DueAt, len(j.Attempts))
		}
		j.URL = srv.URL
		return tx.PutJob(j)
	}); err != nil {
		t.Fatal(err)
	}
	d = queue.NewDispatcher(st, httpsend.New(httpsend.Options{}), queue.Options{})
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	defer d.Stop()
	h.wait(t, 1)
	waitState(t, st, "x", queue.StateDelivered)
}

func TestClosedStoreFailsCleanly(t *testing.T) {
	st, err := queue.OpenBadger(t.TempDir(), queue.BadgerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	if err := st.View(func(tx queue.Tx) error { _, _, err := tx.NextDue(); return err }); err != queue.ErrClosed {
		t.Fatalf("View on closed store = %v, want ErrClosed", err)
	}
	if err := st.Update(func(queue.Tx) error { return nil }); err != queue.ErrClosed {
		t.Fatalf("Update on closed store = %v", err)
	}
}

func TestSecondOpenSaysLocked(t *testing.T) {
	dir := t.TempDir()
	openStore(t, dir)
	_, err := queue.OpenBadger(dir, queue.BadgerOptions{})
	if err == nil {
		t.Fatal("second open of one directory succeeded")
	}
	if want := "locked by another process"; !strings.Contains(err.Error(), want) {
		t.Fatalf("error %q does not say %q", err, want)
	}
}

func TestChainOrderWaitsForEarlierJob(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := queue.NewFakeClock(t0)
	var mu sync.Mutex
	var order []string
	failFirst := true
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		id := r.Header.Get(httpsend.HeaderEventID)
		order = append(order, id)
		if id == "a1" && failFirst {
			failFirst = false
			w.WriteHeader(500)
			return
		}
		w.WriteHeader(200)
	}))
	defer srv.Close()
	st := openStore(t, t.TempDir())
	d := queue.NewDispatcher(st, httpsend.New(httpsend.Options{}), queue.Options{Clock: clock})
	err := d.Update(func(tx queue.Tx) error {
		for _, j := range []struct{ id, chain string }{{"a1", "A"}, {"a2", "A"}, {"a3", "A"}, {"b1", "B"}} {
			if _, err := tx.Enqueue(&queue.Job{ID: j.id, EventID: j.id, Chain: j.chain, URL: srv.URL, DueAt: t0,
				Payload: queue.Payload{Fields: []queue.Field{{Name: "event_type", Value: "x"}}}}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if s := job(t, st, "a2").State; s != queue.StateWaiting {
		t.Fatalf("a2 is %s, want waiting behind a1", s)
	}
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	defer d.Stop()
	waitState(t, st, "b1", queue.StateDelivered) // another chain does not wait for A
	waitAttempts(t, st, "a1", 1)                 // a1 failed once and awaits its retry
	if s := job(t, st, "a2").State; s != queue.StateWaiting {
		t.Fatalf("a2 is %s while a1 awaits a retry, want waiting", s)
	}
	clock.Advance(5 * time.Minute)
	waitState(t, st, "a3", queue.StateDelivered)
	mu.Lock()
	defer mu.Unlock()
	var a []string
	for _, id := range order {
		if id != "b1" {
			a = append(a, id)
		}
	}
	if strings.Join(a, ",") != "a1,a1,a2,a3" {
		t.Fatalf("chain A attempted in order %v, want a1,a1,a2,a3", a)
	}
}

func TestFinishedIndexAndReplayBookkeeping(t *testing.T) {
	st := openStore(t, t.TempDir())
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	err := st.Update(func(tx queue.Tx) error {
		for _, id := range []string{"d1", "d2"} {
			if _, err := tx.Enqueue(&queue.Job{ID: id, Chain: "C", DueAt: t0}); err != nil {
				return err
			}
		}
		j, _ := tx.Job("d1")
		j.State, j.FinishedAt, j.DueAt = queue.StateDead, t0.Add(time.Hour), t0.Add(time.Hour)
		return tx.PutJob(j)
	})
	if err != nil {
		t.Fatal(err)
	}
	if j := job(t, st, "d2"); j.State != queue.StatePending || !j.DueAt.Equal(t0.Add(time.Hour)) {
		t.Fatalf("d2 after d1 died: %s due %s, want pending due at d1's finish", j.State, j.DueAt)
	}
	var dead []string
	st.View(func(tx queue.Tx) error {
		return tx.Finished(queue.StateDead, t0, func(j *queue.Job) bool { dead = append(dead, j.ID); return true })
	})
	if len(dead) != 1 || dead[0] != "d1" {
		t.Fatalf("dead since t0 = %v", dead)
	}
	st.View(func(tx queue.Tx) error {
		dead = nil
		return tx.Finished(queue.StateDead, t0.Add(2*time.Hour), func(j *queue.Job) bool { dead = append(dead, j.ID); return true })
	})
	if len(dead) != 0 {
		t.Fatalf("dead since after its death = %v", dead)
	}
}
