package module

import (
	"encoding/json"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/faxhook/caddy-faxhook/module/profile"
	"github.com/faxhook/caddy-faxhook/module/profile/fax"
	"github.com/faxhook/caddy-faxhook/queue"
)

// newTestEngine assembles an engine over a real Badger store in a temp dir, with its send
// journal beside it, settings s and the tracker's start time read. None of its loops runs: no
// observation worker, poller or dispatcher.
func newTestEngine(t *testing.T, s settings) *engine {
	t.Helper()
	dir := t.TempDir()
	st, err := queue.OpenBadger(dir, queue.BadgerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	j, _, err := openJournal(dir)
	if err != nil {
		st.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { j.close(); st.Close() })
	e := newEngine(dir, zap.NewNop())
	e.cfg.Store(&s)
	e.assemble(st, j, false)
	if err := e.tracker.init(); err != nil {
		t.Fatal(err)
	}
	return e
}

func obj(id int64, status string, completedAt time.Time) profile.Object {
	f := fax.Fax{ID: id, Direction: fax.DirectionSent, Status: status, IsTest: true,
		Recipients: []fax.Recipient{{PhoneNumber: "+15550100000", Status: fax.Str(status)}}}
	if fax.IsTerminal(status) {
		f.CompletedAt = fax.Str(completedAt.Format("2006-01-02T15:04:05.000-07:00"))
	}
	return profile.Object{Fax: f, Full: true}
}

func allJobs(t *testing.T, e *engine) []*queue.Job {
	t.Helper()
	var jobs []*queue.Job
	err := e.store.View(func(tx queue.Tx) error {
		return tx.Jobs(func(j *queue.Job) bool { jobs = append(jobs, j); return true })
	})
	if err != nil {
		t.Fatal(err)
	}
	return jobs
}

func record(t *testing.T, e *engine, obs ...*Observation) {
	t.Helper()
	if err := e.tracker.record(obs); err != nil {
		t.Fatal(err)
	}
}

func TestExactlyOneFaxCompletedToCallbackURL(t *testing.T) {
	e := newTestEngine(t, settings{sentURLs: []string{"https://global.example/sent"}})
	now := time.Now()
	record(t, e, &Observation{Faxes: []profile.Object{{Fax: fax.Fax{ID: 7}}}, CallbackURLs: []string{"https://cb.example/x?y=1"}})
	record(t, e, &Observation{Faxes: []profile.Object{obj(7, fax.StatusInProgress, now)}})
	if n := len(allJobs(t, e)); n != 0 {
		t.Fatalf("%d jobs before completion", n)
	}
	record(t, e, &Observation{Faxes: []profile.Object{obj(7, fax.StatusSuccess, now)}})
	record(t, e, &Observation{Faxes: []profile.Object{obj(7, fax.StatusSuccess, now)}}, &Observation{Faxes: []profile.Object{obj(7, fax.StatusSuccess, now)}})
	jobs := allJobs(t, e)
	if len(jobs) != 1 {
		t.Fatalf("%d jobs, want exactly one fax_completed", len(jobs))
	}
	j := jobs[0]
	if j.URL != "https://cb.example/x?y=1" || eventTypeOf(j) != fax.EventFaxCompleted || j.State != queue.StatePending {
		t.Fatalf("job = %+v", j)
	}
	if j.Fields[0].Name != "fax" || j.Fields[1] != (queue.Field{Name: "event_type", Value: "fax_completed"}) {
		t.Fatalf("fields = %+v", j.Fields)
	}
	var f map[string]any
	if err := json.Unmarshal([]byte(j.Fields[0].Value), &f); err != nil || f["status"] != "success" || f["id"] != float64(7) {
		t.Fatalf("fax field = %s (%v)", j.Fields[0].Value, err)
	}
}

func TestGlobalURLsFanOutAndNoURLNoJob(t *testing.T) {
	e := newTestEngine(t, settings{sentURLs: []string{"https://a.example/1", "https://b.example/2"}})
	now := time.Now()
	record(t, e, &Observation{Faxes: []profile.Object{obj(1, fax.StatusInProgress, now)}},
		&Observation{Faxes: []profile.Object{obj(1, fax.StatusFailure, now)}})
	jobs := allJobs(t, e)
	if len(jobs) != 2 || jobs[0].EventID != jobs[1].EventID || jobs[0].URL == jobs[1].URL {
		t.Fatalf("want one event to two URLs, got %+v", jobs)
	}

	e2 := newTestEngine(t, settings{})
	record(t, e2, &Observation{Faxes: []profile.Object{obj(2, fax.StatusInProgress, now)}},
		&Observation{Faxes: []profile.Object{obj(2, fax.StatusSuccess, now)}})
	if n := len(allJobs(t, e2)); n != 0 {
		t.Fatalf("%d jobs without any URL", n)
	}
}

func TestHistoryIsNotReplayed(t *testing.T) {
	e := newTestEngine(t, settings{sentURLs: []string{"https://a.example/1"}})
	old := time.Now().Add(-48 * time.Hour)
	record(t, e, &Observation{Faxes: []profile.Object{obj(3, fax.StatusSuccess, old)}})
	if n := len(allJobs(t, e)); n != 0 {
		t.Fatalf("a fax completed before faxhook started fired %d webhooks", n)
	}
	// A fax first seen complete, but completed after faxhook started, is news.
	record(t, e, &Observation{Faxes: []profile.Object{obj(4, fax.StatusSuccess, time.Now().Add(time.Minute))}})
	if n := len(allJobs(t, e)); n != 1 {
		t.Fatalf("%d jobs for a fresh completion, want 1", n)
	}
}

func TestClosedStoreDoesNotPanic(t *testing.T) {
	e := newTestEngine(t, settings{})
	e.store.Close()
	if err := e.tracker.record([]*Observation{{Faxes: []profile.Object{obj(5, fax.StatusSuccess, time.Now())}}}); err == nil {
		t.Fatal("recording on a closed store succeeded")
	}
}
