package mailsend

import (
	"testing"
	"time"

	"github.com/faxhook/caddy-faxhook/queue"
)

// A server that answers 451 once gets the e-mail on the second attempt, 5 minutes (the ladder's
// first step, in virtual time) after the first, through the real dispatcher and Badger store.
func TestTemporaryFailureRetriedAtLadderOffset(t *testing.T) {
	be := &backend{tempFailData: 1}
	port := startServer(t, be, plainServer)
	st, err := queue.OpenBadger(t.TempDir(), queue.BadgerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := queue.NewFakeClock(t0)
	d := queue.NewDispatcher(st, newSender(t, port, TLSOpportunistic, nil), queue.Options{Clock: clock})
	job := sentJob(t, "mailto:a@x.test")
	job.ID, job.DueAt = "mail-451", t0
	if err := d.Update(func(tx queue.Tx) error { _, err := tx.Enqueue(job); return err }); err != nil {
		t.Fatal(err)
	}
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	defer d.Stop()
	get := func() *queue.Job {
		var j *queue.Job
		st.View(func(tx queue.Tx) (err error) { j, err = tx.Job("mail-451"); return })
		return j
	}
	waitFor := func(cond func(*queue.Job) bool) *queue.Job {
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			if j := get(); j != nil && cond(j) {
				return j
			}
			time.Sleep(5 * time.Millisecond)
		}
		t.Fatalf("job never got there: %+v", get())
		return nil
	}
	waitFor(func(j *queue.Job) bool { return len(j.Attempts) == 1 && j.State == queue.StatePending })
	clock.Advance(5 * time.Minute)
	j := waitFor(func(j *queue.Job) bool { return j.State == queue.StateDelivered })
	if len(j.Attempts) != 2 || j.Attempts[0].Status != 451 || j.Attempts[1].At.Sub(t0) != 5*time.Minute {
		t.Fatalf("attempts %+v; want a 451, then success at +5m", j.Attempts)
	}
	if n := len(be.messages()); n != 1 {
		t.Fatalf("%d messages delivered, want 1", n)
	}
}
