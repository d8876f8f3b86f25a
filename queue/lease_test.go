package queue_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/faxhook/caddy-faxhook/queue"
	"github.com/faxhook/caddy-faxhook/queue/httpsend"
)

// A job under way stays pending in the store (leases are held in memory), yet the many rounds
// that run meanwhile never offer it again: its receiver sees one attempt, and Leases names it.
func TestLeasedJobIsAttemptedOnceWhileRoundsGoOn(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := queue.NewFakeClock(t0)
	slow := newHanging(t)
	var fastHits atomic.Int64
	fast := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { fastHits.Add(1) }))
	defer fast.Close()
	st := openStore(t, t.TempDir())
	enqueueAll(t, st, "slow", slow.srv.URL+"/hook", 1, t0)
	d := queue.NewDispatcher(st, httpsend.New(httpsend.Options{Timeout: time.Hour}),
		queue.Options{Clock: clock, Workers: 4, PerHost: 2, Lease: 2 * time.Hour})
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	defer d.Stop()
	slow.waitHeld(t, 1)
	if s := job(t, st, "slow000").State; s != queue.StatePending {
		t.Fatalf("the job under way is stored as %s, want pending", s)
	}
	if until, ok := d.Leases()["slow000"]; !ok || !until.Equal(t0.Add(2*time.Hour)) {
		t.Fatalf("Leases() = %v, want slow000 until %s", d.Leases(), t0.Add(2*time.Hour))
	}
	for i := range 20 { // each batch makes the dispatcher scan the due index again
		for _, id := range enqueueAll(t, st, "f"+string(rune('a'+i)), fast.URL+"/hook", 3, t0) {
			d.Wake()
			waitState(t, st, id, queue.StateDelivered)
		}
	}
	if cur, _, total := slow.stats(); cur != 1 || total != 1 {
		t.Fatalf("the slow receiver got %d requests (%d under way), want the one attempt", total, cur)
	}
	if n := fastHits.Load(); n != 60 {
		t.Fatalf("60 jobs delivered with %d requests", n)
	}
	slow.open()
	waitState(t, st, "slow000", queue.StateDelivered)
	// The lease ends once the round that stored the outcome is back: a moment after.
	for deadline := time.Now().Add(5 * time.Second); len(d.Leases()) != 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("leases left after every job was delivered: %v", d.Leases())
		}
	}
}

// Stop hands back the job it was attempting: a dispatcher started again over the same open
// store attempts it at once, although scans had moved past it (a job due later was seen).
func TestStopHandsBackJobsUnderWay(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := queue.NewFakeClock(t0)
	slow := newHanging(t)
	st := openStore(t, t.TempDir())
	enqueueAll(t, st, "now", slow.srv.URL+"/hook", 1, t0)
	enqueueAll(t, st, "later", slow.srv.URL+"/later", 1, t0.Add(time.Hour))
	opts := queue.Options{Clock: clock, Workers: 2, PerHost: 2}
	d := queue.NewDispatcher(st, httpsend.New(httpsend.Options{Timeout: time.Hour}), opts)
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	slow.waitHeld(t, 1)
	d.Wake() // one more scan: it passes over the job under way and sees the later one
	time.Sleep(20 * time.Millisecond)
	d.Stop()
	if j := job(t, st, "now000"); j.State != queue.StatePending || len(j.Attempts) != 0 {
		t.Fatalf("after Stop the job is %s with %d attempts, want pending with none", j.State, len(j.Attempts))
	}
	slow.waitHeld(t, 0)

	d2 := queue.NewDispatcher(st, httpsend.New(httpsend.Options{Timeout: time.Hour}), opts)
	if err := d2.Start(); err != nil {
		t.Fatal(err)
	}
	defer d2.Stop()
	slow.waitHeld(t, 1)
	if _, _, total := slow.stats(); total != 2 {
		t.Fatalf("the receiver got %d requests, want the abandoned attempt and its repeat", total)
	}
	slow.open()
	waitState(t, st, "now000", queue.StateDelivered)
}

// An attempt that outlives its lease (a sender that ignores its own timeout) is cancelled and
// stored as a failed attempt, to be retried; the worker goes on with the next job.
func TestAttemptOutlivingItsLeaseIsCancelled(t *testing.T) {
	t0 := time.Now()
	st := openStore(t, t.TempDir())
	enqueueAll(t, st, "stuck", "http://stuck.example/hook", 1, t0)
	enqueueAll(t, st, "next", "http://next.example/hook", 1, t0)
	sender := sendFunc(func(ctx context.Context, j *queue.Job) queue.Result {
		if j.ID == "stuck000" && len(j.Attempts) == 0 {
			<-ctx.Done() // hangs until the dispatcher cancels it
			return queue.Result{Err: fmt.Errorf("abandoned: %w", context.Cause(ctx))}
		}
		return queue.Result{Status: 200}
	})
	d := queue.NewDispatcher(st, sender, queue.Options{Workers: 1, PerHost: 1, Lease: 300 * time.Millisecond})
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	defer d.Stop()
	j := waitAttempts(t, st, "stuck000", 1)
	if j.State != queue.StatePending || !strings.Contains(j.Attempts[0].Error, "outlived the job's lease") {
		t.Fatalf("stuck job: state %s, attempts %+v; want pending for a retry after a lease error", j.State, j.Attempts)
	}
	if d := j.Attempts[0].Duration; d < 300*time.Millisecond || d > 5*time.Second {
		t.Errorf("the stuck attempt lasted %s, want about the 300ms lease", d)
	}
	waitState(t, st, "next000", queue.StateDelivered)
}

// sendFunc adapts a function to queue.Sender.
type sendFunc func(context.Context, *queue.Job) queue.Result

func (f sendFunc) Send(ctx context.Context, j *queue.Job) queue.Result { return f(ctx, j) }
