package queue_test

import (
	"testing"
	"time"

	"github.com/faxhook/caddy-faxhook/queue"
)

// A receiver down for three virtual days: 17 attempts at the ladder's offsets, dead, then a
// replay delivers it once the receiver is back.
func TestDeadForThreeDaysThenReplayed(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := queue.NewFakeClock(t0)
	up := false
	h, srv := newHits(clock, func(int) int {
		if up {
			return 200
		}
		return 502
	})
	defer srv.Close()
	st, d := startDispatcher(t, clock)
	enqueue(t, d, "down", srv.URL, t0)
	var offsets []time.Duration
	var at time.Duration
	for n := 1; n <= 17; n++ {
		h.wait(t, n)
		offsets = append(offsets, at)
		if n == 17 {
			break
		}
		waitAttempts(t, st, "down", n)
		at += queue.DefaultSchedule[n-1]
		clock.Advance(queue.DefaultSchedule[n-1])
	}
	j := waitState(t, st, "down", queue.StateDead)
	if len(j.Attempts) != 17 {
		t.Fatalf("%d attempt-log entries, want 17", len(j.Attempts))
	}
	for i, a := range j.Attempts {
		if got := a.At.Sub(t0); got != offsets[i] || a.Status != 502 || a.Error == "" {
			t.Fatalf("attempt %d: +%s status %d error %q; want +%s, 502", i+1, got, a.Status, a.Error, offsets[i])
		}
	}
	clock.Advance(24 * time.Hour)
	up = true
	n, err := queue.ReplayDead(st, t0, clock.Now())
	if err != nil || n != 1 {
		t.Fatalf("ReplayDead = %d, %v", n, err)
	}
	d.Wake()
	h.wait(t, 18)
	j = waitState(t, st, "down", queue.StateDelivered)
	if len(j.Attempts) != 18 || len(j.ReplayedAt) != 1 {
		t.Fatalf("after replay: %d attempts, %d replays", len(j.Attempts), len(j.ReplayedAt))
	}
}

func TestPurgeFinishedBeforeCutoff(t *testing.T) {
	st := openStore(t, t.TempDir())
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	err := st.Update(func(tx queue.Tx) error {
		for i, id := range []string{"old", "new", "open"} {
			if _, err := tx.Enqueue(&queue.Job{ID: id, DueAt: t0}); err != nil {
				return err
			}
			if id == "open" {
				continue
			}
			j, _ := tx.Job(id)
			j.State, j.FinishedAt = queue.StateDelivered, t0.Add(time.Duration(i)*48*time.Hour)
			if err := tx.PutJob(j); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	n, err := queue.Purge(st, queue.StateDelivered, t0.Add(24*time.Hour))
	if err != nil || n != 1 {
		t.Fatalf("Purge = %d, %v; want 1", n, err)
	}
	st.View(func(tx queue.Tx) error {
		if _, err := tx.Job("old"); err != queue.ErrNotFound {
			t.Errorf("old delivered job still there: %v", err)
		}
		for _, id := range []string{"new", "open"} {
			if _, err := tx.Job(id); err != nil {
				t.Errorf("job %s was purged: %v", id, err)
			}
		}
		return nil
	})
}
