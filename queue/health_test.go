package queue_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/faxhook/caddy-faxhook/queue"
	"github.com/faxhook/caddy-faxhook/queue/httpsend"
)

// receiver is a loopback webhook receiver that is down (503) until told otherwise and records
// every request: its virtual time, and the fax and sequence number of each delivery it accepted.
type receiver struct {
	clock queue.Clock
	up    atomic.Bool

	mu        sync.Mutex
	times     []time.Time // virtual time of every request
	delivered []string    // "fax/seq" of the requests answered 200, in order
	deliverAt []time.Time
	srv       *httptest.Server
}

func newReceiver(t *testing.T, clock queue.Clock) *receiver {
	r := &receiver{clock: clock}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if err := req.ParseMultipartForm(1 << 20); err != nil {
			t.Errorf("receiver: %v", err)
		}
		r.mu.Lock()
		now := r.clock.Now()
		r.times = append(r.times, now)
		up := r.up.Load()
		if up {
			r.delivered = append(r.delivered, req.FormValue("fax")+"/"+req.FormValue("seq"))
			r.deliverAt = append(r.deliverAt, now)
		}
		r.mu.Unlock()
		if up {
			w.WriteHeader(200)
			return
		}
		w.WriteHeader(503)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) requests() []time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]time.Time(nil), r.times...)
}

// outcomes counts the attempt outcomes a dispatcher stored (Options.OnOutcome).
type outcomes struct{ n atomic.Int64 }

func (o *outcomes) hook(*queue.Job, queue.Result) { o.n.Add(1) }

// wait waits (real time) until n outcomes were stored.
func (o *outcomes) wait(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for int(o.n.Load()) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d attempt outcomes stored, want %d", o.n.Load(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// waitFor waits (real time) until cond holds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// enqueueFax enqueues the webhooks of one fax to url: seqs jobs in one chain, created a
// millisecond apart (oldest first), all due at due.
func enqueueFax(t *testing.T, d *queue.Dispatcher, url string, fax, seqs int, created, due time.Time) []string {
	t.Helper()
	var ids []string
	err := d.Update(func(tx queue.Tx) error {
		for s := range seqs {
			id := fmt.Sprintf("%s-fax%02d-%d", strings.TrimPrefix(url, "http://"), fax, s)
			ids = append(ids, id)
			at := created.Add(time.Duration(fax*seqs+s) * time.Millisecond)
			_, err := tx.Enqueue(&queue.Job{ID: id, EventID: id, URL: url, Chain: fmt.Sprintf("%s/fax%d", url, fax),
				Payload:   queue.Payload{Fields: []queue.Field{{Name: "fax", Value: fmt.Sprint(fax)}, {Name: "seq", Value: fmt.Sprint(s)}}},
				CreatedAt: at, DueAt: due})
			if err != nil {
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

func startHealthDispatcher(t *testing.T, clock queue.Clock, opts queue.Options) (*queue.Badger, *queue.Dispatcher, *outcomes) {
	t.Helper()
	st := openStore(t, t.TempDir())
	out := &outcomes{}
	opts.Clock, opts.OnOutcome = clock, out.hook
	d := queue.NewDispatcher(st, httpsend.New(httpsend.Options{}), opts)
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Stop)
	return st, d, out
}

// A receiver down for two hours with 50 webhooks for it (10 faxes, 5 each, in per-fax chains):
// once it is down, at most one probe per interval reaches it; when it answers again, the next
// probe finds it up and all 50 are delivered at once, in per-fax order.
func TestDownDestinationIsProbedThenItsBacklogDeliveredAtOnce(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := queue.NewFakeClock(t0)
	rcv := newReceiver(t, clock)
	var mu sync.Mutex
	var changes []queue.DestinationHealth
	st, d, out := startHealthDispatcher(t, clock, queue.Options{OnHealth: func(h queue.DestinationHealth) {
		mu.Lock()
		changes = append(changes, h)
		mu.Unlock()
	}})
	var ids []string
	for fax := range 10 {
		ids = append(ids, enqueueFax(t, d, rcv.srv.URL, fax, 5, t0, t0)...)
	}
	waitFor(t, "the destination to go down", func() bool { return d.DestinationsDown() == 1 })
	waitFor(t, "the attempts under way to end", func() bool {
		return len(d.Leases()) == 0 && int(out.n.Load()) == len(rcv.requests())
	})
	before := len(rcv.requests())
	if before < 5 || before > 8 { // 5 failures, and at most PerHost−1 more that were under way
		t.Fatalf("%d requests before the destination was down, want 5 to 8", before)
	}
	h := d.Health()
	if len(h) != 1 || h[0].State != queue.HealthDown || h[0].Failures < 5 || !h[0].NextProbe.Equal(t0.Add(queue.DefaultProbeInterval)) {
		t.Fatalf("health = %+v", h)
	}

	// Two hours of outage, in steps of the probe interval: one probe per step (ahead of its
	// job's ladder when none is due), no more.
	steps := int(2 * time.Hour / queue.DefaultProbeInterval)
	for i := 1; i <= steps; i++ {
		clock.Advance(queue.DefaultProbeInterval)
		waitFor(t, fmt.Sprintf("probe %d", i), func() bool { return len(rcv.requests()) >= before+i })
		out.wait(t, before+i)
	}
	time.Sleep(50 * time.Millisecond)
	reqs := rcv.requests()
	if got := len(reqs) - before; got != steps {
		t.Fatalf("%d requests during the 2-hour outage, want %d (one per %s)", got, steps, queue.DefaultProbeInterval)
	}
	for i := before + 1; i < len(reqs); i++ {
		if gap := reqs[i].Sub(reqs[i-1]); gap < queue.DefaultProbeInterval {
			t.Fatalf("probes %d and %d only %s apart", i-1, i, gap)
		}
	}
	if n := countState(t, st, queue.StateDead); n != 0 {
		t.Fatalf("%d jobs dead during the outage", n)
	}

	// Back: the next probe succeeds, and every webhook goes out without waiting for its ladder.
	rcv.up.Store(true)
	back := clock.Now().Add(queue.DefaultProbeInterval)
	clock.Advance(queue.DefaultProbeInterval)
	for _, id := range ids {
		waitState(t, st, id, queue.StateDelivered)
	}
	rcv.mu.Lock()
	delivered, at := rcv.delivered, rcv.deliverAt
	rcv.mu.Unlock()
	if len(delivered) != 50 {
		t.Fatalf("%d deliveries, want 50", len(delivered))
	}
	for _, a := range at {
		if a.Sub(back) > 3*time.Second {
			t.Fatalf("a delivery at +%s after the receiver was back", a.Sub(back))
		}
	}
	next := map[string]int{}
	for _, fs := range delivered {
		fax, seq, _ := strings.Cut(fs, "/")
		if want := fmt.Sprint(next[fax]); seq != want {
			t.Fatalf("fax %s: webhook %s delivered when %s was next (order %v)", fax, seq, want, delivered)
		}
		next[fax]++
	}
	for _, id := range ids {
		// Probes ahead of a job's ladder are logged, but not steps of its ladder: in two hours
		// the ladder allows 5 attempts, and the delivery makes 6.
		if j := job(t, st, id); len(j.Attempts)-j.LadderBase > 6 {
			t.Fatalf("job %s: %d attempts, %d of them on its ladder", id, len(j.Attempts), len(j.Attempts)-j.LadderBase)
		}
	}
	if d.DestinationsDown() != 0 || len(d.Health()) != 0 {
		t.Fatalf("after recovery: %d down, health %+v", d.DestinationsDown(), d.Health())
	}
	mu.Lock()
	defer mu.Unlock()
	if len(changes) != 2 || changes[0].State != queue.HealthDown || changes[1].State != queue.HealthUp {
		t.Fatalf("health changes reported: %+v", changes)
	}
}

func countState(t *testing.T, st queue.Store, state string) int64 {
	t.Helper()
	var c map[string]int64
	if err := st.View(func(tx queue.Tx) (err error) { c, err = tx.Counts(); return }); err != nil {
		t.Fatal(err)
	}
	return c[state]
}

// While one destination is down with a large backlog, another destination's webhooks are all
// delivered at once: the virtual clock does not move.
func TestHealthyDestinationIsNotSlowedByADownOne(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := queue.NewFakeClock(t0)
	down := newReceiver(t, clock)
	healthy := newReceiver(t, clock)
	healthy.up.Store(true)
	st, d, _ := startHealthDispatcher(t, clock, queue.Options{})
	for fax := range 40 {
		enqueueFax(t, d, down.srv.URL, fax, 5, t0, t0)
	}
	waitFor(t, "the destination to go down", func() bool { return d.DestinationsDown() == 1 })
	var ids []string
	for fax := range 20 {
		ids = append(ids, enqueueFax(t, d, healthy.srv.URL, fax, 5, t0, t0)...)
	}
	for _, id := range ids {
		waitState(t, st, id, queue.StateDelivered)
	}
	for _, at := range healthy.requests() {
		if !at.Equal(t0) {
			t.Fatalf("a delivery to the healthy destination at +%s", at.Sub(t0))
		}
	}
	if n := len(down.requests()); n > 8 {
		t.Fatalf("%d requests to the down destination without the clock moving, want at most 8", n)
	}
}

// A job whose ladder's time runs out while its destination is down dies unattempted, and its
// attempt log says why.
func TestLadderOverWhileDownDies(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := queue.NewFakeClock(t0)
	rcv := newReceiver(t, clock)
	st, d, out := startHealthDispatcher(t, clock, queue.Options{
		Schedule: []time.Duration{time.Minute, time.Minute}, PerHost: 1,
		Health: queue.Health{Failures: 1, ProbeInterval: 30 * time.Second},
	})
	err := d.Update(func(tx queue.Tx) error {
		for _, id := range []string{"j1", "j2", "j3"} {
			if _, err := tx.Enqueue(&queue.Job{ID: id, URL: rcv.srv.URL, CreatedAt: t0, DueAt: t0}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// t0: j1 fails, the destination is down; 30s: j2 probed; 1m: j3; 1m30: j1; 2m: j2, its
	// ladder over (dead), and j3, due since 2m and its ladder over, dies unattempted.
	out.wait(t, 1)
	for i := 2; i <= 5; i++ {
		clock.Advance(30 * time.Second)
		waitFor(t, fmt.Sprintf("request %d", i), func() bool { return len(rcv.requests()) >= i })
		out.wait(t, i)
	}
	if n := len(rcv.requests()); n != 5 {
		t.Fatalf("%d requests, want 5", n)
	}
	j3 := waitState(t, st, "j3", queue.StateDead)
	last := j3.Attempts[len(j3.Attempts)-1]
	if len(j3.Attempts) != 2 || !strings.Contains(last.Error, "not attempted") || !strings.Contains(last.Error, "ladder") {
		t.Fatalf("j3's attempt log: %+v", j3.Attempts)
	}
	if r := queue.DeadReason(queue.Result{Err: fmt.Errorf("wrapped: %w", queue.ErrLadderOver)}); !strings.Contains(r, "destination down") {
		t.Fatalf("DeadReason of a job dead while its destination was down: %q", r)
	}
	if j := waitState(t, st, "j2", queue.StateDead); len(j.Attempts) != 2 {
		t.Fatalf("j2's attempt log: %+v", j.Attempts)
	}
	clock.Advance(30 * time.Second)
	if j := waitState(t, st, "j1", queue.StateDead); len(j.Attempts) != 3 || !j.FinishedAt.Equal(t0.Add(150*time.Second)) {
		t.Fatalf("j1: %d attempts, finished at +%s", len(j.Attempts), j.FinishedAt.Sub(t0))
	}
}

// With health off, every job keeps Phaxio's plain ladder whatever the others do: three jobs to
// a receiver that always fails are each attempted at 0, 5m, 15m, 35m and 65m.
func TestHealthOffKeepsThePlainLadder(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := queue.NewFakeClock(t0)
	rcv := newReceiver(t, clock)
	st, d, out := startHealthDispatcher(t, clock, queue.Options{Health: queue.Health{Off: true}})
	for _, id := range []string{"a", "b", "c"} {
		enqueue(t, d, id, rcv.srv.URL, t0)
	}
	out.wait(t, 3)
	for step := range 4 {
		clock.Advance(queue.DefaultSchedule[step])
		out.wait(t, 3*(step+2))
	}
	want := []time.Duration{0, 5 * time.Minute, 15 * time.Minute, 35 * time.Minute, 65 * time.Minute}
	for _, id := range []string{"a", "b", "c"} {
		j := job(t, st, id)
		if len(j.Attempts) != len(want) {
			t.Fatalf("job %s: %d attempts, want %d", id, len(j.Attempts), len(want))
		}
		for i, a := range j.Attempts {
			if a.At.Sub(t0) != want[i] {
				t.Fatalf("job %s attempt %d at +%s, want +%s", id, i+1, a.At.Sub(t0), want[i])
			}
		}
	}
	if d.DestinationsDown() != 0 || len(d.Health()) != 0 {
		t.Fatalf("health off, yet %d down, %+v", d.DestinationsDown(), d.Health())
	}
}
