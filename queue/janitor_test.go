package queue_test

import (
	"testing"
	"time"

	"github.com/faxhook/caddy-faxhook/queue"
)

// finish stores jobs that finished in state at the given times.
func finish(t *testing.T, st queue.Store, state string, at map[string]time.Time) {
	t.Helper()
	err := st.Update(func(tx queue.Tx) error {
		for id, when := range at {
			if _, err := tx.Enqueue(&queue.Job{ID: id, DueAt: when}); err != nil {
				return err
			}
			j, err := tx.Job(id)
			if err != nil {
				return err
			}
			j.State, j.FinishedAt, j.DueAt = state, when, when
			if err := tx.PutJob(j); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func exists(t *testing.T, st queue.Store, id string) bool {
	t.Helper()
	var err error
	if verr := st.View(func(tx queue.Tx) error { _, err = tx.Job(id); return nil }); verr != nil {
		t.Fatal(verr)
	}
	return err == nil
}

func TestJanitorPurgesByRetention(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	clock := queue.NewFakeClock(t0)
	st := openStore(t, t.TempDir())
	finish(t, st, queue.StateDelivered, map[string]time.Time{"del8d": t0.Add(-8 * day), "del6d": t0.Add(-6 * day)})
	finish(t, st, queue.StateDead, map[string]time.Time{"dead31d": t0.Add(-31 * day), "dead29d": t0.Add(-29 * day)})
	enqueueAll(t, st, "open", "http://example.com", 1, t0.Add(-40*day))

	sweeps := make(chan queue.SweepResult, 10)
	stop := st.StartJanitor(queue.JanitorOptions{Clock: clock, Interval: time.Hour,
		OnSweep: func(r queue.SweepResult) { sweeps <- r }})
	defer stop()
	next := func() queue.SweepResult {
		t.Helper()
		select {
		case r := <-sweeps:
			if r.Err != nil {
				t.Fatal(r.Err)
			}
			return r
		case <-time.After(10 * time.Second):
			t.Fatal("no sweep")
		}
		return queue.SweepResult{}
	}
	if r := next(); r.Delivered != 1 || r.Dead != 1 || !r.At.Equal(t0) {
		t.Fatalf("first sweep %+v, want 1 delivered and 1 dead purged at %s", r, t0)
	}
	for id, want := range map[string]bool{"del8d": false, "del6d": true, "dead31d": false, "dead29d": true, "open000": true} {
		if got := exists(t, st, id); got != want {
			t.Errorf("after the first sweep, job %s exists = %v, want %v", id, got, want)
		}
	}

	clock.Advance(2 * day) // fires the hourly tick once
	if r := next(); r.Delivered != 1 || r.Dead != 1 {
		t.Fatalf("sweep two days later %+v, want 1 delivered and 1 dead purged", r)
	}
	if exists(t, st, "del6d") || exists(t, st, "dead29d") || !exists(t, st, "open000") {
		t.Fatal("second sweep kept an expired job or purged an unfinished one")
	}

	// New options apply from the next sweep: dead jobs kept forever, delivered ones for a day.
	st.StartJanitor(queue.JanitorOptions{Clock: clock, DeliveredRetention: day, DeadRetention: -1,
		OnSweep: func(r queue.SweepResult) { sweeps <- r }})
	finish(t, st, queue.StateDelivered, map[string]time.Time{"del2d": clock.Now().Add(-2 * day)})
	finish(t, st, queue.StateDead, map[string]time.Time{"dead90d": clock.Now().Add(-90 * day)})
	clock.Advance(time.Hour)
	if r := next(); r.Delivered != 1 || r.Dead != 0 {
		t.Fatalf("sweep with new options %+v, want 1 delivered, 0 dead", r)
	}
	if !exists(t, st, "dead90d") {
		t.Fatal("a negative DeadRetention purged a dead job")
	}
}

// Close stops a running janitor; a janitor started on a closed store does nothing.
func TestCloseStopsJanitor(t *testing.T) {
	st, err := queue.OpenBadger(t.TempDir(), queue.BadgerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	swept := make(chan struct{}, 1)
	st.StartJanitor(queue.JanitorOptions{Interval: time.Millisecond, OnSweep: func(queue.SweepResult) {
		select {
		case swept <- struct{}{}:
		default:
		}
	}})
	<-swept
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	stop := st.StartJanitor(queue.JanitorOptions{})
	stop()
}
