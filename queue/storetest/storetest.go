// Package storetest is the conformance suite of queue.Store: every behaviour the dispatcher,
// the tracker, the janitor and the admin API rely on, checked through the Store and Tx
// interfaces only, so that every backend (Badger embedded, PostgreSQL for fleets) runs the same
// suite against itself:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) queue.Store { return openMyStore(t) })
//	}
package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/faxhook/caddy-faxhook/queue"
)

// Run runs the suite. open returns a new, empty store for one test; the suite closes it (a
// second Close must be harmless).
func Run(t *testing.T, open func(t *testing.T) queue.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s queue.Store)
	}{
		{"StateRecords", testStateRecords},
		{"UpdateIsAtomic", testUpdateIsAtomic},
		{"EnqueueIsIdempotent", testEnqueueIsIdempotent},
		{"JobRoundTrip", testJobRoundTrip},
		{"MissingJobs", testMissingJobs},
		{"StoredStatesOnly", testStoredStatesOnly},
		{"DueOrder", testDueOrder},
		{"DestinationsAndPendingJobs", testDestinationsAndPendingJobs},
		{"Outcomes", testOutcomes},
		{"ChainsAreFIFO", testChainsAreFIFO},
		{"ChainReplay", testChainReplay},
		{"ChainsWithAnyBytes", testChainsWithAnyBytes},
		{"Counts", testCounts},
		{"CountsUnderConcurrentWriters", testCountsUnderConcurrentWriters},
		{"CountsOverManyTransactions", testCountsOverManyTransactions},
		{"Paging", testPaging},
		{"Retention", testRetention},
		{"Replay", testReplay},
		{"RetryLadderAndDead", testRetryLadderAndDead},
		{"LeasesLiveInTheDispatcher", testLeasesLiveInTheDispatcher},
		{"PerHostAndIsolation", testPerHostAndIsolation},
		{"DispatchInDueOrder", testDispatchInDueOrder},
		{"FutureJobBehindALeasedOne", testFutureJobBehindALeasedOne},
		{"ErrClosedAfterClose", testErrClosedAfterClose},
		{"FleetDeliversEachJobOnce", testFleetDeliversEachJobOnce},
		{"FleetExpiredClaim", testFleetExpiredClaim},
		{"FleetStopReleasesClaims", testFleetStopReleasesClaims},
		{"FleetSlowDestination", testFleetSlowDestination},
		{"FleetAheadBytes", testFleetAheadBytes},
		{"FleetSpreadsSlowDestination", testFleetSpreadsSlowDestination},
		{"TwoWritersOneStateRecord", testTwoWritersOneStateRecord},
		{"ClaimIsExclusive", testClaimIsExclusive},
		{"ChainPromotionUnderConcurrentEnqueue", testChainPromotionUnderConcurrentEnqueue},
		{"DestinationHealth", testDestinationHealth},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t)
			t.Cleanup(func() { s.Close() })
			tc.fn(t, s)
		})
	}
}

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// newJob returns a job with a body, to url, due at due.
func newJob(id, url string, due time.Time) *queue.Job {
	return &queue.Job{
		ID: id, EventID: "ev-" + id, URL: url, CreatedAt: due, DueAt: due,
		Meta: queue.Labels{{Name: "event_type", Value: "fax_completed"}},
		Payload: queue.Payload{
			Fields: []queue.Field{{Name: "fax", Value: `{"id":` + fmt.Sprint(len(id)) + `}`}, {Name: "event_type", Value: "fax_completed"}},
			Files:  []queue.File{{Name: "file", Filename: "f.pdf", ContentType: "application/pdf", Data: []byte("%PDF-1.4\x00\xff" + id)}},
		},
	}
}

func update(t *testing.T, s queue.Store, fn func(tx queue.Tx) error) {
	t.Helper()
	if err := s.Update(fn); err != nil {
		t.Fatal(err)
	}
}

func view(t *testing.T, s queue.Store, fn func(tx queue.Tx) error) {
	t.Helper()
	if err := s.View(fn); err != nil {
		t.Fatal(err)
	}
}

func enqueue(t *testing.T, s queue.Store, jobs ...*queue.Job) {
	t.Helper()
	update(t, s, func(tx queue.Tx) error {
		for _, j := range jobs {
			ok, err := tx.Enqueue(j)
			if err != nil {
				return err
			}
			if !ok {
				return fmt.Errorf("enqueueing new job %s reported an existing one", j.ID)
			}
		}
		return nil
	})
}

func head(t *testing.T, s queue.Store, id string) *queue.Job {
	t.Helper()
	var j *queue.Job
	view(t, s, func(tx queue.Tx) (err error) { j, err = tx.JobHead(id); return err })
	return j
}

func states(t *testing.T, s queue.Store, ids ...string) string {
	t.Helper()
	var out []string
	view(t, s, func(tx queue.Tx) error {
		for _, id := range ids {
			j, err := tx.JobHead(id)
			if err != nil {
				return fmt.Errorf("job %s: %w", id, err)
			}
			out = append(out, j.State)
		}
		return nil
	})
	return strings.Join(out, " ")
}

// finish stores an outcome: delivered (or dead) at the given time.
func finish(t *testing.T, s queue.Store, id, state string, at time.Time) {
	t.Helper()
	update(t, s, func(tx queue.Tx) error {
		j, err := tx.JobHead(id)
		if err != nil {
			return err
		}
		j.Attempts = append(j.Attempts, queue.Attempt{At: at, Status: 200})
		j.State, j.FinishedAt, j.DueAt = state, at, at
		return tx.PutJobHead(j)
	})
}

func asJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// checkCounts compares Counts with a count of every job's state.
func checkCounts(t *testing.T, s queue.Store) map[string]int64 {
	t.Helper()
	var got map[string]int64
	want := map[string]int64{queue.StateWaiting: 0, queue.StatePending: 0, queue.StateDelivered: 0, queue.StateDead: 0}
	view(t, s, func(tx queue.Tx) (err error) {
		if got, err = tx.Counts(); err != nil {
			return err
		}
		return tx.JobHeads(func(j *queue.Job) bool { want[j.State]++; return true })
	})
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("Counts = %v, want %v (from the jobs)", got, want)
	}
	return got
}

func testStateRecords(t *testing.T, s queue.Store) {
	update(t, s, func(tx queue.Tx) error {
		for _, k := range []string{"t/2", "t/10", "t/1", "u/1", "t"} {
			if err := tx.PutState(k, []byte("v"+k)); err != nil {
				return err
			}
		}
		return tx.PutState("t/1", []byte("new"))
	})
	view(t, s, func(tx queue.Tx) error {
		if v, err := tx.State("t/1"); err != nil || string(v) != "new" {
			t.Errorf("State(t/1) = %q, %v; want the last value put", v, err)
		}
		if _, err := tx.State("nope"); !errors.Is(err, queue.ErrNotFound) {
			t.Errorf("State of a missing key = %v, want ErrNotFound", err)
		}
		var keys []string
		err := tx.States("t/", func(k string, v []byte) bool {
			if string(v) != "v"+k && k != "t/1" {
				t.Errorf("States gave %q = %q", k, v)
			}
			keys = append(keys, k)
			return true
		})
		if err != nil {
			return err
		}
		if fmt.Sprint(keys) != "[t/1 t/10 t/2]" {
			t.Errorf("States(t/) = %v, want [t/1 t/10 t/2] (prefix, key order)", keys)
		}
		keys = nil
		if err := tx.States("", func(k string, _ []byte) bool { keys = append(keys, k); return len(keys) < 2 }); err != nil {
			return err
		}
		if fmt.Sprint(keys) != "[t t/1]" {
			t.Errorf("States stopped by fn = %v, want [t t/1]", keys)
		}
		return nil
	})
	update(t, s, func(tx queue.Tx) error {
		if err := tx.DeleteState("t/1"); err != nil {
			return err
		}
		return tx.DeleteState("never-there")
	})
	view(t, s, func(tx queue.Tx) error {
		if _, err := tx.State("t/1"); !errors.Is(err, queue.ErrNotFound) {
			t.Errorf("State after DeleteState = %v, want ErrNotFound", err)
		}
		return nil
	})
}

// A state record and the jobs enqueued with it commit together or not at all; a transaction
// sees its own writes.
func testUpdateIsAtomic(t *testing.T, s queue.Store) {
	boom := errors.New("boom")
	err := s.Update(func(tx queue.Tx) error {
		if err := tx.PutState("fax/1", []byte("sent")); err != nil {
			return err
		}
		if _, err := tx.Enqueue(newJob("a", "https://a.example/h", t0)); err != nil {
			return err
		}
		if v, err := tx.State("fax/1"); err != nil || string(v) != "sent" {
			t.Errorf("a transaction does not see its own state record: %q, %v", v, err)
		}
		if j, err := tx.JobHead("a"); err != nil || j.State != queue.StatePending {
			t.Errorf("a transaction does not see its own job: %v, %v", j, err)
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Update returned %v, want fn's error", err)
	}
	view(t, s, func(tx queue.Tx) error {
		if _, err := tx.State("fax/1"); !errors.Is(err, queue.ErrNotFound) {
			t.Errorf("state record of a rolled back transaction: %v", err)
		}
		if _, err := tx.Job("a"); !errors.Is(err, queue.ErrNotFound) {
			t.Errorf("job of a rolled back transaction: %v", err)
		}
		if due, err := tx.Due(t0.Add(time.Hour), 10); err != nil || len(due) != 0 {
			t.Errorf("due after a rollback: %d jobs, %v", len(due), err)
		}
		return nil
	})
	checkCounts(t, s)
	for _, lazy := range []bool{false, true} {
		id := fmt.Sprint("b", lazy)
		fn := func(tx queue.Tx) error {
			if err := tx.PutState("fax/"+id, []byte("sent")); err != nil {
				return err
			}
			_, err := tx.Enqueue(newJob(id, "https://a.example/h", t0))
			return err
		}
		if lazy {
			err = s.UpdateLazy(fn)
		} else {
			err = s.Update(fn)
		}
		if err != nil {
			t.Fatal(err)
		}
		view(t, s, func(tx queue.Tx) error {
			if _, err := tx.State("fax/" + id); err != nil {
				t.Errorf("state record of a committed transaction: %v", err)
			}
			if _, err := tx.Job(id); err != nil {
				t.Errorf("job of a committed transaction: %v", err)
			}
			return nil
		})
	}
	if c := checkCounts(t, s); c[queue.StatePending] != 2 {
		t.Errorf("pending = %d, want 2", c[queue.StatePending])
	}
}

func testEnqueueIsIdempotent(t *testing.T, s queue.Store) {
	first := newJob("same", "https://a.example/h", t0)
	enqueue(t, s, first)
	again := newJob("same", "https://b.example/other", t0.Add(-time.Hour))
	again.Fields = []queue.Field{{Name: "x", Value: "y"}}
	update(t, s, func(tx queue.Tx) error {
		ok, err := tx.Enqueue(again)
		if ok || err != nil {
			t.Errorf("second Enqueue of the same ID = %v, %v; want false, nil", ok, err)
		}
		return err
	})
	view(t, s, func(tx queue.Tx) error {
		j, err := tx.Job("same")
		if err != nil {
			return err
		}
		if j.URL != first.URL || !j.DueAt.Equal(t0) || asJSON(t, j.Fields) != asJSON(t, first.Fields) {
			t.Errorf("the second Enqueue changed the job: %+v", j)
		}
		return nil
	})
	if c := checkCounts(t, s); c[queue.StatePending] != 1 {
		t.Errorf("pending = %d after enqueueing one ID twice, want 1", c[queue.StatePending])
	}
}

// Every field comes back as stored; JobHead leaves the body out, PutJobHead keeps it, PutJob
// replaces it.
func testJobRoundTrip(t *testing.T, s queue.Store) {
	j := newJob("rt", "https://user:pw@a.example:8443/h?x=1", t0)
	j.Chain = "chain-rt"
	j.CreatedAt = t0.Add(-time.Minute)
	enqueue(t, s, j)
	if j.State != queue.StatePending {
		t.Errorf("Enqueue set State %q, want pending", j.State)
	}
	view(t, s, func(tx queue.Tx) error {
		got, err := tx.Job("rt")
		if err != nil {
			return err
		}
		if asJSON(t, got) != asJSON(t, j) {
			t.Errorf("Job = %s\nwant  %s", asJSON(t, got), asJSON(t, j))
		}
		h, err := tx.JobHead("rt")
		if err != nil {
			return err
		}
		if h.Fields != nil || h.Files != nil || h.URL != j.URL || h.Chain != j.Chain || !h.DueAt.Equal(j.DueAt) || !h.CreatedAt.Equal(j.CreatedAt) {
			t.Errorf("JobHead = %+v; want the head without the body", h)
		}
		return nil
	})
	// A head change keeps the body.
	update(t, s, func(tx queue.Tx) error {
		h, err := tx.JobHead("rt")
		if err != nil {
			return err
		}
		h.Attempts = []queue.Attempt{{At: t0, Duration: 1500 * time.Millisecond, Status: 503, Error: "busy", Body: "try later"}}
		h.DueAt = t0.Add(5 * time.Minute)
		h.Lease = "claim-1"
		return tx.PutJobHead(h)
	})
	var got *queue.Job
	view(t, s, func(tx queue.Tx) (err error) { got, err = tx.Job("rt"); return err })
	if got.Lease != "claim-1" {
		t.Errorf("Lease = %q after PutJobHead, want claim-1", got.Lease)
	}
	if len(got.Fields) != 2 || len(got.Files) != 1 || string(got.Files[0].Data) != string(j.Files[0].Data) {
		t.Errorf("PutJobHead lost the body: %+v", got)
	}
	if len(got.Attempts) != 1 || got.Attempts[0].Status != 503 || got.Attempts[0].Error != "busy" || got.Attempts[0].Duration != 1500*time.Millisecond ||
		!got.DueAt.Equal(t0.Add(5*time.Minute)) {
		t.Errorf("PutJobHead did not store the head: %+v", got)
	}
	// PutJob replaces the body.
	got.Files = nil
	got.Fields = []queue.Field{{Name: "only", Value: "one"}}
	update(t, s, func(tx queue.Tx) error { return tx.PutJob(got) })
	view(t, s, func(tx queue.Tx) (err error) { got, err = tx.Job("rt"); return err })
	if len(got.Files) != 0 || len(got.Fields) != 1 || got.Fields[0].Value != "one" {
		t.Errorf("PutJob did not replace the body: %+v", got)
	}
}

func testMissingJobs(t *testing.T, s queue.Store) {
	view(t, s, func(tx queue.Tx) error {
		if _, err := tx.Job("nope"); !errors.Is(err, queue.ErrNotFound) {
			t.Errorf("Job of a missing ID = %v, want ErrNotFound", err)
		}
		if _, err := tx.JobHead("nope"); !errors.Is(err, queue.ErrNotFound) {
			t.Errorf("JobHead of a missing ID = %v, want ErrNotFound", err)
		}
		return nil
	})
	err := s.Update(func(tx queue.Tx) error {
		return tx.PutJobHead(&queue.Job{ID: "nope", State: queue.StatePending, DueAt: t0})
	})
	if !errors.Is(err, queue.ErrNotFound) {
		t.Errorf("PutJobHead of a missing job = %v, want ErrNotFound", err)
	}
	err = s.Update(func(tx queue.Tx) error { return tx.PutJob(newJob("nope", "https://a.example/h", t0)) })
	if !errors.Is(err, queue.ErrNotFound) {
		t.Errorf("PutJob of a missing job = %v, want ErrNotFound", err)
	}
	update(t, s, func(tx queue.Tx) error { return tx.DeleteJob("nope") })
	err = s.Update(func(tx queue.Tx) error { _, err := tx.Enqueue(&queue.Job{URL: "https://a.example/h"}); return err })
	if err == nil {
		t.Error("Enqueue of a job without an ID succeeded")
	}
	checkCounts(t, s)
}

// Leases are the dispatcher's and waiting is the store's: neither can be put; a job cannot
// move to another chain; an unfinished job cannot be deleted.
func testStoredStatesOnly(t *testing.T, s queue.Store) {
	enqueue(t, s, newJob("a", "https://a.example/h", t0))
	for _, state := range []string{queue.StateLeased, queue.StateWaiting, "bogus"} {
		err := s.Update(func(tx queue.Tx) error {
			j, err := tx.JobHead("a")
			if err != nil {
				return err
			}
			j.State = state
			return tx.PutJobHead(j)
		})
		if err == nil {
			t.Errorf("PutJobHead with state %q succeeded", state)
		}
	}
	err := s.Update(func(tx queue.Tx) error {
		j, err := tx.JobHead("a")
		if err != nil {
			return err
		}
		j.Chain = "other"
		return tx.PutJobHead(j)
	})
	if err == nil {
		t.Error("PutJobHead moved a job to another chain")
	}
	if err := s.Update(func(tx queue.Tx) error { return tx.DeleteJob("a") }); err == nil {
		t.Error("DeleteJob deleted a pending job")
	}
	if got := states(t, s, "a"); got != queue.StatePending {
		t.Errorf("a is %s, want pending", got)
	}
	checkCounts(t, s)
}

// Due lists the due jobs of every destination, earliest first, never a job not yet due, never
// more than limit; NextDue is the earliest due time.
func testDueOrder(t *testing.T, s queue.Store) {
	var jobs []*queue.Job
	offsets := []int{7, -3, 0, 12, -8, 5, 1, 30, -1, 2}
	for i, off := range offsets {
		url := fmt.Sprintf("https://h%d.example/hook", i%3)
		jobs = append(jobs, newJob(fmt.Sprintf("j%02d", i), url, t0.Add(time.Duration(off)*time.Minute)))
	}
	// Same due time: ID breaks the tie.
	jobs = append(jobs, newJob("tie-b", "https://h0.example/hook", t0), newJob("tie-a", "https://h1.example/hook", t0))
	enqueue(t, s, jobs...)
	now := t0.Add(5 * time.Minute)
	var want []string
	sorted := slices.Clone(jobs)
	sort.SliceStable(sorted, func(a, b int) bool {
		if !sorted[a].DueAt.Equal(sorted[b].DueAt) {
			return sorted[a].DueAt.Before(sorted[b].DueAt)
		}
		return sorted[a].ID < sorted[b].ID
	})
	for _, j := range sorted {
		if !j.DueAt.After(now) {
			want = append(want, j.ID)
		}
	}
	view(t, s, func(tx queue.Tx) error {
		for _, limit := range []int{0, 1, 3, len(want), 100} {
			due, err := tx.Due(now, limit)
			if err != nil {
				return err
			}
			var got []string
			for _, j := range due {
				got = append(got, j.ID)
				if len(j.Fields) == 0 {
					t.Errorf("Due returned %s without its body", j.ID)
				}
			}
			if w := want[:min(limit, len(want))]; fmt.Sprint(got) != fmt.Sprint(w) {
				t.Errorf("Due(limit %d) = %v, want %v", limit, got, w)
			}
		}
		next, ok, err := tx.NextDue()
		if err != nil || !ok || !next.Equal(t0.Add(-8*time.Minute)) {
			t.Errorf("NextDue = %s, %v, %v; want %s", next, ok, err, t0.Add(-8*time.Minute))
		}
		return nil
	})
	// Finished jobs are no longer due; retries move.
	finish(t, s, "j04", queue.StateDelivered, t0)
	update(t, s, func(tx queue.Tx) error {
		j, err := tx.JobHead("j01")
		if err != nil {
			return err
		}
		j.DueAt = t0.Add(time.Hour)
		return tx.PutJobHead(j)
	})
	view(t, s, func(tx queue.Tx) error {
		due, err := tx.Due(now, 100)
		if err != nil {
			return err
		}
		for _, j := range due {
			if j.ID == "j04" || j.ID == "j01" {
				t.Errorf("Due lists %s, which is delivered or due later", j.ID)
			}
		}
		if len(due) != len(want)-2 {
			t.Errorf("Due lists %d jobs, want %d", len(due), len(want)-2)
		}
		next, ok, err := tx.NextDue()
		if err != nil || !ok || !next.Equal(t0.Add(-1*time.Minute)) {
			t.Errorf("NextDue = %s, %v, %v; want %s", next, ok, err, t0.Add(-1*time.Minute))
		}
		return nil
	})
	view(t, s, func(tx queue.Tx) error {
		empty, err := tx.Due(t0.Add(-time.Hour), 10)
		if err != nil || len(empty) != 0 {
			t.Errorf("Due before every due time = %d jobs, %v", len(empty), err)
		}
		return nil
	})
}

// Destinations lists each destination with a job due by now once, with its earliest due time,
// and gives a time no other pending job is due before; PendingJobs lists one destination's
// pending jobs, earliest first, due or not.
func testDestinationsAndPendingJobs(t *testing.T, s queue.Store) {
	a, b := "https://a.example/x", "http://user:pw@B.example:8080/y?z"
	enqueue(t, s,
		newJob("a3", a, t0.Add(3*time.Minute)), newJob("a1", a, t0.Add(time.Minute)), newJob("a2", a+"/other", t0.Add(2*time.Minute)),
		newJob("b2", b, t0.Add(20*time.Minute)), newJob("b1", b, t0.Add(-time.Minute)),
	)
	destA, destB := queue.Destination(a), queue.Destination(b)
	listAt := func(now time.Time) (string, time.Time) {
		var out []string
		var next time.Time
		view(t, s, func(tx queue.Tx) (err error) {
			next, err = tx.Destinations(now, func(dest string, oldest time.Time) bool {
				out = append(out, dest+"@"+oldest.Sub(t0).String())
				return true
			})
			return err
		})
		slices.Sort(out)
		return strings.Join(out, " "), next
	}
	list := func() string { got, _ := listAt(t0.Add(time.Hour)); return got }
	sorted := func(s ...string) string { slices.Sort(s); return strings.Join(s, " ") }
	if got, next := listAt(t0.Add(time.Hour)); got != sorted(destA+"@1m0s", destB+"@-1m0s") || !next.IsZero() {
		t.Fatalf("Destinations(+1h) = %s, next %s; want both, no next", got, next)
	}
	// Before a's first job is due: only b, and a time after now, not after a1's due time.
	if got, next := listAt(t0); got != destB+"@-1m0s" || !next.After(t0) || next.After(t0.Add(time.Minute)) {
		t.Errorf("Destinations(t0) = %s, next %s; want b only, next in (t0, t0+1m]", got, next)
	}
	if got, next := listAt(t0.Add(-2 * time.Minute)); got != "" || !next.After(t0.Add(-2*time.Minute)) || next.After(t0.Add(-time.Minute)) {
		t.Errorf("Destinations(-2m) = %s, next %s; want none, next in (-2m, -1m]", got, next)
	}
	n := 0
	view(t, s, func(tx queue.Tx) error {
		_, err := tx.Destinations(t0.Add(time.Hour), func(string, time.Time) bool { n++; return false })
		return err
	})
	if n != 1 {
		t.Errorf("Destinations went on after fn returned false (%d calls)", n)
	}
	pending := func(dest string) []string {
		var ids []string
		view(t, s, func(tx queue.Tx) error {
			return tx.PendingJobs(dest, func(id string, at time.Time) bool {
				ids = append(ids, id+"@"+at.Sub(t0).String())
				return true
			})
		})
		return ids
	}
	if got := pending(destA); fmt.Sprint(got) != "[a1@1m0s a2@2m0s a3@3m0s]" {
		t.Errorf("PendingJobs(a) = %v", got)
	}
	if got := pending(destB); fmt.Sprint(got) != "[b1@-1m0s b2@20m0s]" {
		t.Errorf("PendingJobs(b) = %v", got)
	}
	if got := pending("https://nobody.example"); len(got) != 0 {
		t.Errorf("PendingJobs of an unknown destination = %v", got)
	}
	// Stopping early.
	n = 0
	view(t, s, func(tx queue.Tx) error {
		return tx.PendingJobs(destA, func(string, time.Time) bool { n++; return false })
	})
	if n != 1 {
		t.Errorf("PendingJobs went on after fn returned false (%d calls)", n)
	}
	// A destination whose jobs all finished is no longer listed; a new job brings it back.
	finish(t, s, "b1", queue.StateDelivered, t0)
	finish(t, s, "b2", queue.StateDead, t0)
	if got := list(); got != destA+"@1m0s" {
		t.Errorf("Destinations after b's jobs finished = %s, want only %s", got, destA)
	}
	// A job whose URL changes moves to its new destination.
	update(t, s, func(tx queue.Tx) error {
		j, err := tx.Job("a3")
		if err != nil {
			return err
		}
		j.URL = b
		return tx.PutJob(j)
	})
	if got := pending(destB); fmt.Sprint(got) != "[a3@3m0s]" {
		t.Errorf("PendingJobs(b) after a3 moved = %v", got)
	}
	if got := pending(destA); fmt.Sprint(got) != "[a1@1m0s a2@2m0s]" {
		t.Errorf("PendingJobs(a) after a3 moved = %v", got)
	}
	if got := list(); got != sorted(destA+"@1m0s", destB+"@3m0s") {
		t.Errorf("Destinations after a3 moved = %s, want a and b", got)
	}
}

// An outcome moves a job out of the due jobs into the finished ones.
func testOutcomes(t *testing.T, s queue.Store) {
	enqueue(t, s, newJob("d", "https://a.example/h", t0), newJob("x", "https://a.example/h", t0), newJob("r", "https://a.example/h", t0))
	finish(t, s, "d", queue.StateDelivered, t0.Add(time.Second))
	finish(t, s, "x", queue.StateDead, t0.Add(2*time.Second))
	update(t, s, func(tx queue.Tx) error { // a failed attempt: pending, due later
		j, err := tx.JobHead("r")
		if err != nil {
			return err
		}
		j.Attempts = append(j.Attempts, queue.Attempt{At: t0, Status: 500, Error: "500"})
		j.DueAt = t0.Add(5 * time.Minute)
		return tx.PutJobHead(j)
	})
	if got := states(t, s, "d", "x", "r"); got != "delivered dead pending" {
		t.Fatalf("states = %s", got)
	}
	view(t, s, func(tx queue.Tx) error {
		due, err := tx.Due(t0.Add(time.Minute), 10)
		if err != nil || len(due) != 0 {
			t.Errorf("due after the outcomes: %d, %v; want none", len(due), err)
		}
		for _, c := range []struct{ state, want string }{{queue.StateDelivered, "[d]"}, {queue.StateDead, "[x]"}} {
			var ids []string
			err := tx.Finished(c.state, time.Time{}, func(j *queue.Job) bool {
				if len(j.Fields) == 0 {
					t.Errorf("Finished gave %s without its body", j.ID)
				}
				ids = append(ids, j.ID)
				return true
			})
			if err != nil {
				return err
			}
			if fmt.Sprint(ids) != c.want {
				t.Errorf("Finished(%s) = %v, want %s", c.state, ids, c.want)
			}
		}
		h, err := tx.JobHead("d")
		if err != nil || !h.FinishedAt.Equal(t0.Add(time.Second)) || len(h.Attempts) != 1 {
			t.Errorf("delivered job = %+v, %v", h, err)
		}
		if err := tx.Finished(queue.StatePending, time.Time{}, func(*queue.Job) bool { return true }); err == nil {
			t.Error("Finished accepted an unfinished state")
		}
		return nil
	})
	checkCounts(t, s)
}

func chainJob(id, chain string, due time.Time) *queue.Job {
	j := newJob(id, "https://c.example/"+chain, due)
	j.Chain = chain
	return j
}

// A chain may hold any byte, NUL included, and one chain may be the beginning of another: each
// is still its own chain, and waiting jobs are listed as themselves.
func testChainsWithAnyBytes(t *testing.T, s queue.Store) {
	enqueue(t, s, chainJob("a1", "7", t0), chainJob("a2", "7", t0),
		chainJob("b1", "7\x00https://x", t0), chainJob("b2", "7\x00https://x", t0),
		chainJob("c1", "7\x01", t0), chainJob("c2", "7\x01", t0))
	if got := states(t, s, "a1", "a2", "b1", "b2", "c1", "c2"); got != "pending waiting pending waiting pending waiting" {
		t.Fatalf("states = %s, want each chain's first pending, second waiting", got)
	}
	view(t, s, func(tx queue.Tx) error {
		pg, err := tx.List(queue.ListQuery{State: queue.StateWaiting})
		if err != nil {
			return err
		}
		var ids []string
		for _, j := range pg.Jobs {
			ids = append(ids, j.ID)
		}
		slices.Sort(ids)
		if strings.Join(ids, " ") != "a2 b2 c2" {
			t.Errorf("waiting jobs listed: %v, want a2 b2 c2", ids)
		}
		return nil
	})
	finish(t, s, "a1", queue.StateDelivered, t0.Add(time.Minute))
	if got := states(t, s, "a2", "b2", "c2"); got != "pending waiting waiting" {
		t.Fatalf("after a1 was delivered: %s, want only a2 released", got)
	}
	finish(t, s, "b1", queue.StateDelivered, t0.Add(time.Minute))
	if got := states(t, s, "b2", "c2"); got != "pending waiting" {
		t.Fatalf("after b1 was delivered: %s, want only b2 released", got)
	}
	checkCounts(t, s)
}

// Within a chain a job waits until every job enqueued before it finished; the next one becomes
// pending, due at the finished job's DueAt; other chains are not held.
func testChainsAreFIFO(t *testing.T, s queue.Store) {
	enqueue(t, s, chainJob("a", "C", t0), chainJob("b", "C", t0), chainJob("other", "D", t0))
	enqueue(t, s, chainJob("c", "C", t0.Add(-time.Hour))) // due earlier, still behind a and b
	if got := states(t, s, "a", "b", "c", "other"); got != "pending waiting waiting pending" {
		t.Fatalf("states = %s, want pending waiting waiting pending", got)
	}
	view(t, s, func(tx queue.Tx) error {
		due, err := tx.Due(t0.Add(time.Hour), 10)
		if err != nil {
			return err
		}
		for _, j := range due {
			if j.ID == "b" || j.ID == "c" {
				t.Errorf("waiting job %s is due", j.ID)
			}
		}
		return nil
	})
	c := checkCounts(t, s)
	if c[queue.StateWaiting] != 2 {
		t.Errorf("waiting = %d, want 2", c[queue.StateWaiting])
	}
	// A failed attempt keeps the chain held.
	update(t, s, func(tx queue.Tx) error {
		j, err := tx.JobHead("a")
		if err != nil {
			return err
		}
		j.DueAt = t0.Add(5 * time.Minute)
		return tx.PutJobHead(j)
	})
	if got := states(t, s, "a", "b", "c"); got != "pending waiting waiting" {
		t.Fatalf("after a's retry was scheduled: %s", got)
	}
	finish(t, s, "a", queue.StateDelivered, t0.Add(10*time.Minute))
	if got := states(t, s, "a", "b", "c"); got != "delivered pending waiting" {
		t.Fatalf("after a was delivered: %s, want delivered pending waiting", got)
	}
	if j := head(t, s, "b"); !j.DueAt.Equal(t0.Add(10 * time.Minute)) {
		t.Errorf("b is due %s, want %s (when a finished)", j.DueAt, t0.Add(10*time.Minute))
	}
	finish(t, s, "b", queue.StateDead, t0.Add(20*time.Minute)) // a dead job lets the chain go on too
	if got := states(t, s, "b", "c"); got != "dead pending" {
		t.Fatalf("after b died: %s, want dead pending", got)
	}
	finish(t, s, "c", queue.StateDelivered, t0.Add(30*time.Minute))
	checkCounts(t, s)
	// The chain drained: a new job is pending at once.
	enqueue(t, s, chainJob("d", "C", t0))
	if got := states(t, s, "d"); got != "pending" {
		t.Fatalf("a job entering a drained chain is %s, want pending", got)
	}
	// Deleting finished jobs of a chain keeps the chain working.
	update(t, s, func(tx queue.Tx) error {
		for _, id := range []string{"a", "b", "c"} {
			if err := tx.DeleteJob(id); err != nil {
				return err
			}
		}
		return nil
	})
	enqueue(t, s, chainJob("e", "C", t0))
	if got := states(t, s, "d", "e"); got != "pending waiting" {
		t.Fatalf("after deleting finished jobs: %s, want pending waiting", got)
	}
	finish(t, s, "d", queue.StateDelivered, t0.Add(40*time.Minute))
	update(t, s, func(tx queue.Tx) error { return tx.DeleteJob("d") })
	if got := states(t, s, "e"); got != "pending" {
		t.Fatalf("e is %s, want pending", got)
	}
	// Many jobs in one transaction keep their order.
	var many []*queue.Job
	for i := range 20 {
		many = append(many, chainJob(fmt.Sprintf("m%02d", i), "M", t0))
	}
	enqueue(t, s, many...)
	for i := range 20 {
		id := fmt.Sprintf("m%02d", i)
		view(t, s, func(tx queue.Tx) error {
			due, err := tx.Due(t0.Add(time.Hour), 100)
			if err != nil {
				return err
			}
			var ms []string
			for _, j := range due {
				if strings.HasPrefix(j.ID, "m") {
					ms = append(ms, j.ID)
				}
			}
			if fmt.Sprint(ms) != "["+id+"]" {
				t.Fatalf("chain M: due %v, want [%s]", ms, id)
			}
			return nil
		})
		finish(t, s, id, queue.StateDelivered, t0.Add(time.Duration(i)*time.Second))
	}
	checkCounts(t, s)
}

// A finished job of a chain replayed while a later job of its chain is unfinished is pending
// at once, and does not hold that later job back nor get held by it; a replayed waiting job is
// not made pending a second time when its turn comes.
func testChainReplay(t *testing.T, s queue.Store) {
	enqueue(t, s, chainJob("a", "C", t0))
	finish(t, s, "a", queue.StateDead, t0)
	enqueue(t, s, chainJob("b", "C", t0), chainJob("c", "C", t0))
	if got := states(t, s, "a", "b", "c"); got != "dead pending waiting" {
		t.Fatalf("states = %s", got)
	}
	update(t, s, func(tx queue.Tx) error { _, err := queue.Replay(tx, "a", t0.Add(time.Minute)); return err })
	if got := states(t, s, "a", "b", "c"); got != "pending pending waiting" {
		t.Fatalf("after replaying a: %s, want pending pending waiting", got)
	}
	finish(t, s, "a", queue.StateDelivered, t0.Add(2*time.Minute))
	if got := states(t, s, "b", "c"); got != "pending waiting" {
		t.Fatalf("after the replayed a was delivered: %s, want pending waiting", got)
	}
	// Replaying the waiting c makes it pending now; b finishing then leaves it as it is.
	update(t, s, func(tx queue.Tx) error { _, err := queue.Replay(tx, "c", t0.Add(3*time.Minute)); return err })
	if got := states(t, s, "c"); got != "pending" {
		t.Fatalf("replayed waiting c is %s", got)
	}
	finish(t, s, "c", queue.StateDelivered, t0.Add(4*time.Minute))
	finish(t, s, "b", queue.StateDelivered, t0.Add(5*time.Minute))
	if got := states(t, s, "b", "c"); got != "delivered delivered" {
		t.Fatalf("states = %s, want delivered delivered", got)
	}
	checkCounts(t, s)
}

// Counts follow every change of state, in the transaction that makes it.
func testCounts(t *testing.T, s queue.Store) {
	c := checkCounts(t, s)
	for _, st := range []string{queue.StateWaiting, queue.StatePending, queue.StateDelivered, queue.StateDead} {
		if v, ok := c[st]; !ok || v != 0 {
			t.Errorf("Counts of an empty store: %s = %d, %v; want 0, present", st, v, ok)
		}
	}
	enqueue(t, s, chainJob("a", "C", t0), chainJob("b", "C", t0), newJob("p", "https://a.example/h", t0), newJob("q", "https://b.example/h", t0))
	checkCounts(t, s)
	update(t, s, func(tx queue.Tx) error {
		j, err := tx.JobHead("a")
		if err != nil {
			return err
		}
		j.State, j.FinishedAt = queue.StateDelivered, t0
		if err := tx.PutJobHead(j); err != nil {
			return err
		}
		c, err := tx.Counts()
		if err != nil {
			return err
		}
		if c[queue.StateDelivered] != 1 || c[queue.StatePending] != 3 || c[queue.StateWaiting] != 0 {
			t.Errorf("Counts in the transaction that changed them = %v, want its own changes", c)
		}
		return nil
	})
	checkCounts(t, s)
	finish(t, s, "p", queue.StateDead, t0)
	checkCounts(t, s)
	update(t, s, func(tx queue.Tx) error { _, err := queue.Replay(tx, "p", t0); return err })
	checkCounts(t, s)
	finish(t, s, "p", queue.StateDelivered, t0)
	update(t, s, func(tx queue.Tx) error { return tx.DeleteJob("p") })
	c = checkCounts(t, s)
	if fmt.Sprint(c) != fmt.Sprint(map[string]int64{queue.StateWaiting: 0, queue.StatePending: 2, queue.StateDelivered: 1, queue.StateDead: 0}) {
		t.Errorf("Counts = %v", c)
	}
	// A rolled back transaction changes no count.
	_ = s.Update(func(tx queue.Tx) error {
		if _, err := tx.Enqueue(newJob("gone", "https://a.example/h", t0)); err != nil {
			return err
		}
		return errors.New("roll back")
	})
	checkCounts(t, s)
}

// Concurrent writers, each enqueueing and finishing jobs, leave exact counts.
func testCountsUnderConcurrentWriters(t *testing.T, s queue.Store) {
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 25 {
				id := fmt.Sprintf("w%d-%02d", w, i)
				err := s.Update(func(tx queue.Tx) error {
					_, err := tx.Enqueue(newJob(id, fmt.Sprintf("https://h%d.example/h", i%3), t0))
					return err
				})
				if err == nil && i%2 == 0 {
					err = s.UpdateLazy(func(tx queue.Tx) error {
						j, err := tx.JobHead(id)
						if err != nil {
							return err
						}
						j.State, j.FinishedAt = queue.StateDelivered, t0
						return tx.PutJobHead(j)
					})
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	c := checkCounts(t, s)
	if c[queue.StatePending] != 8*12 || c[queue.StateDelivered] != 8*13 {
		t.Errorf("Counts = %v, want 96 pending, 104 delivered", c)
	}
}

// Counts stay exact over many transactions, as a store that keeps them in parts may fold them.
func testCountsOverManyTransactions(t *testing.T, s queue.Store) {
	const n = 3000
	for i := range n {
		id := fmt.Sprintf("m%04d", i)
		update(t, s, func(tx queue.Tx) error {
			_, err := tx.Enqueue(newJob(id, "https://a.example/h", t0))
			return err
		})
		if i%3 == 0 {
			finish(t, s, id, queue.StateDead, t0)
		}
		if i%1000 == 999 {
			checkCounts(t, s)
		}
	}
	time.Sleep(100 * time.Millisecond) // let a background fold run, if the store has one
	if c := checkCounts(t, s); c[queue.StateDead] != n/3 || c[queue.StatePending] != n-n/3 {
		t.Errorf("Counts = %v", c)
	}
}

// List pages through every job of a state exactly once, in the documented order.
func testPaging(t *testing.T, s queue.Store) {
	var jobs []*queue.Job
	for i := range 13 {
		jobs = append(jobs, newJob(fmt.Sprintf("p%02d", i), fmt.Sprintf("https://h%d.example/h", i%3), t0.Add(time.Duration(13-i)*time.Minute)))
	}
	for i := range 5 {
		jobs = append(jobs, chainJob(fmt.Sprintf("w%d", i), fmt.Sprintf("C%d", i%2), t0))
	}
	enqueue(t, s, jobs...)
	for i := range 7 {
		state := queue.StateDelivered
		if i%2 == 1 {
			state = queue.StateDead
		}
		finish(t, s, fmt.Sprintf("p%02d", i), state, t0.Add(time.Duration(10-i)*time.Hour))
	}
	all := func(q queue.ListQuery) []string {
		t.Helper()
		var ids []string
		seen := map[string]bool{}
		for pages := 0; ; pages++ {
			if pages > 50 {
				t.Fatalf("List(%+v) does not end", q)
			}
			var p queue.Page
			view(t, s, func(tx queue.Tx) (err error) { p, err = tx.List(q); return err })
			if len(p.Jobs) > q.Limit && q.Limit > 0 {
				t.Fatalf("List(%+v) gave %d jobs", q, len(p.Jobs))
			}
			for _, j := range p.Jobs {
				if seen[j.ID] {
					t.Fatalf("List(%+v) gave %s twice", q, j.ID)
				}
				seen[j.ID] = true
				if q.State != "" && j.State != q.State {
					t.Errorf("List(state %s) gave %s, which is %s", q.State, j.ID, j.State)
				}
				if j.Fields != nil {
					t.Errorf("List gave %s with its body", j.ID)
				}
				ids = append(ids, j.ID)
			}
			if p.Next == "" {
				return ids
			}
			if len(p.Jobs) == 0 {
				t.Fatalf("List(%+v) gave an empty page with a next cursor", q)
			}
			q.After = p.Next
		}
	}
	// Every job, by ID.
	var want []string
	for _, j := range jobs {
		want = append(want, j.ID)
	}
	slices.Sort(want)
	for _, limit := range []int{1, 4, 18, 100} {
		if got := all(queue.ListQuery{Limit: limit}); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("List(all, limit %d) = %v, want %v", limit, got, want)
		}
	}
	// Pending: by destination, then due time.
	var pending []*queue.Job
	for i := 7; i < 13; i++ {
		pending = append(pending, jobs[i])
	}
	for i := range 5 {
		if i < 2 {
			pending = append(pending, jobs[13+i]) // the first job of each chain
		}
	}
	slices.SortStableFunc(pending, func(a, b *queue.Job) int {
		if c := strings.Compare(queue.Destination(a.URL), queue.Destination(b.URL)); c != 0 {
			return c
		}
		if c := a.DueAt.Compare(b.DueAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	want = nil
	for _, j := range pending {
		want = append(want, j.ID)
	}
	if got := all(queue.ListQuery{State: queue.StatePending, Limit: 2}); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("List(pending) = %v, want %v", got, want)
	}
	// Waiting: by chain, then enqueue order.
	if got := all(queue.ListQuery{State: queue.StateWaiting, Limit: 1}); fmt.Sprint(got) != "[w2 w4 w3]" {
		t.Errorf("List(waiting) = %v, want [w2 w4 w3]", got)
	}
	// Finished: by finish time, from Since.
	if got := all(queue.ListQuery{State: queue.StateDelivered, Limit: 3}); fmt.Sprint(got) != "[p06 p04 p02 p00]" {
		t.Errorf("List(delivered) = %v, want [p06 p04 p02 p00]", got)
	}
	if got := all(queue.ListQuery{State: queue.StateDead, Limit: 2}); fmt.Sprint(got) != "[p05 p03 p01]" {
		t.Errorf("List(dead) = %v, want [p05 p03 p01]", got)
	}
	if got := all(queue.ListQuery{State: queue.StateDelivered, Since: t0.Add(6 * time.Hour), Limit: 1}); fmt.Sprint(got) != "[p04 p02 p00]" {
		t.Errorf("List(delivered since) = %v, want [p04 p02 p00]", got)
	}
	// The default page size, and a page that is exactly the rest.
	var p queue.Page
	view(t, s, func(tx queue.Tx) (err error) { p, err = tx.List(queue.ListQuery{}); return err })
	if len(p.Jobs) != 18 || p.Next != "" {
		t.Errorf("List with the default limit: %d jobs, next %q", len(p.Jobs), p.Next)
	}
	view(t, s, func(tx queue.Tx) (err error) { p, err = tx.List(queue.ListQuery{Limit: 18}); return err })
	if len(p.Jobs) != 18 || p.Next != "" {
		t.Errorf("List(limit 18) of 18 jobs: %d jobs, next %q; want no next page", len(p.Jobs), p.Next)
	}
	// A page's cursor survives changes to the jobs before it.
	view(t, s, func(tx queue.Tx) (err error) {
		p, err = tx.List(queue.ListQuery{State: queue.StateDead, Limit: 1})
		return err
	})
	update(t, s, func(tx queue.Tx) error { return tx.DeleteJob("p05") })
	var rest queue.Page
	view(t, s, func(tx queue.Tx) (err error) {
		rest, err = tx.List(queue.ListQuery{State: queue.StateDead, After: p.Next, Limit: 5})
		return err
	})
	if len(rest.Jobs) != 2 || rest.Jobs[0].ID != "p03" {
		t.Errorf("the page after a deleted job's cursor = %d jobs", len(rest.Jobs))
	}
	err := s.View(func(tx queue.Tx) error { _, err := tx.List(queue.ListQuery{State: "bogus"}); return err })
	if err == nil {
		t.Error("List of an unknown state succeeded")
	}
	err = s.View(func(tx queue.Tx) error { _, err := tx.List(queue.ListQuery{After: "!!not a cursor!!"}); return err })
	if !errors.Is(err, queue.ErrBadCursor) {
		t.Errorf("List with a bad cursor = %v, want ErrBadCursor", err)
	}
}

// Purge and Sweep delete finished jobs past their retention and nothing else.
func testRetention(t *testing.T, s queue.Store) {
	var jobs []*queue.Job
	for i := range 12 {
		jobs = append(jobs, newJob(fmt.Sprintf("r%02d", i), "https://a.example/h", t0))
	}
	enqueue(t, s, jobs...)
	for i := range 10 {
		state := queue.StateDelivered
		if i >= 5 {
			state = queue.StateDead
		}
		finish(t, s, fmt.Sprintf("r%02d", i), state, t0.Add(time.Duration(i)*time.Hour))
	}
	n, err := queue.Purge(s, queue.StateDelivered, t0.Add(3*time.Hour))
	if err != nil || n != 3 {
		t.Fatalf("Purge(delivered before +3h) = %d, %v; want 3", n, err)
	}
	view(t, s, func(tx queue.Tx) error {
		for i := range 12 {
			id := fmt.Sprintf("r%02d", i)
			_, err := tx.Job(id)
			if gone := i < 3; gone != errors.Is(err, queue.ErrNotFound) {
				t.Errorf("after Purge, Job(%s) = %v", id, err)
			}
		}
		return nil
	})
	checkCounts(t, s)
	res := queue.Sweep(s, queue.JanitorOptions{DeliveredRetention: time.Hour, DeadRetention: 2 * time.Hour}, t0.Add(10*time.Hour))
	if res.Err != nil || res.Delivered != 2 || res.Dead != 3 {
		t.Fatalf("Sweep = %+v; want 2 delivered and 3 dead purged", res)
	}
	if c := checkCounts(t, s); c[queue.StateDead] != 2 || c[queue.StateDelivered] != 0 || c[queue.StatePending] != 2 {
		t.Errorf("Counts after Sweep = %v", c)
	}
	res = queue.Sweep(s, queue.JanitorOptions{DeliveredRetention: -1, DeadRetention: -1}, t0.Add(100*time.Hour))
	if res.Err != nil || res.Delivered+res.Dead != 0 {
		t.Errorf("Sweep that keeps everything = %+v", res)
	}
	view(t, s, func(tx queue.Tx) error {
		var left []string
		err := tx.Jobs(func(j *queue.Job) bool { left = append(left, j.ID); return true })
		if fmt.Sprint(left) != "[r08 r09 r10 r11]" {
			t.Errorf("jobs left = %v, want [r08 r09 r10 r11]", left)
		}
		return err
	})
}

// Replay puts a finished job back, due now, with a fresh ladder; ReplayDead replays the jobs
// that died from a time on.
func testReplay(t *testing.T, s queue.Store) {
	enqueue(t, s, newJob("a", "https://a.example/h", t0), newJob("b", "https://a.example/h", t0), newJob("c", "https://a.example/h", t0),
		newJob("p", "https://a.example/h", t0.Add(time.Hour)))
	finish(t, s, "a", queue.StateDead, t0.Add(time.Minute))
	finish(t, s, "b", queue.StateDead, t0.Add(time.Hour))
	finish(t, s, "c", queue.StateDelivered, t0.Add(time.Hour))
	now := t0.Add(2 * time.Hour)
	update(t, s, func(tx queue.Tx) error {
		j, err := queue.Replay(tx, "c", now)
		if err != nil {
			return err
		}
		if j.State != queue.StatePending || !j.DueAt.Equal(now) || j.LadderBase != 1 || len(j.ReplayedAt) != 1 {
			t.Errorf("Replay returned %+v", j)
		}
		if _, err := queue.Replay(tx, "p", now); err != nil { // pending, due later: due now
			return err
		}
		_, err = queue.Replay(tx, "nope", now)
		if !errors.Is(err, queue.ErrNotFound) {
			t.Errorf("Replay of a missing job = %v", err)
		}
		return nil
	})
	view(t, s, func(tx queue.Tx) error {
		j, err := tx.Job("c")
		if err != nil {
			return err
		}
		if j.State != queue.StatePending || !j.FinishedAt.IsZero() || j.LadderBase != 1 || len(j.Attempts) != 1 || len(j.Fields) == 0 {
			t.Errorf("replayed c = %+v", j)
		}
		due, err := tx.Due(now, 10)
		if err != nil || len(due) != 2 {
			t.Errorf("due after replay = %d, %v; want c and p", len(due), err)
		}
		// A replayed job is no longer listed as finished.
		if err := tx.FinishedHeads(queue.StateDelivered, time.Time{}, func(j *queue.Job) bool {
			t.Errorf("Finished(delivered) lists %s, which was replayed", j.ID)
			return true
		}); err != nil {
			return err
		}
		p, err := tx.List(queue.ListQuery{State: queue.StateDelivered})
		if err != nil || len(p.Jobs) != 0 {
			t.Errorf("List(delivered) after replay = %d jobs, %v; want none", len(p.Jobs), err)
		}
		return nil
	})
	n, err := queue.ReplayDead(s, t0.Add(30*time.Minute), now)
	if err != nil || n != 1 {
		t.Fatalf("ReplayDead(since +30m) = %d, %v; want 1 (b)", n, err)
	}
	if got := states(t, s, "a", "b", "c", "p"); got != "dead pending pending pending" {
		t.Errorf("states = %s", got)
	}
	checkCounts(t, s)
}

// fakeSender answers with a scripted result and records the virtual time of each attempt.
type fakeSender struct {
	mu     sync.Mutex
	clock  queue.Clock
	at     map[string][]time.Time
	answer func(ctx context.Context, job *queue.Job, n int) queue.Result
	hits   chan string
}

func newFakeSender(clock queue.Clock, answer func(ctx context.Context, job *queue.Job, n int) queue.Result) *fakeSender {
	return &fakeSender{clock: clock, at: map[string][]time.Time{}, answer: answer, hits: make(chan string, 1000)}
}

func (f *fakeSender) Send(ctx context.Context, job *queue.Job) queue.Result {
	f.mu.Lock()
	f.at[job.ID] = append(f.at[job.ID], f.clock.Now())
	n := len(f.at[job.ID])
	f.mu.Unlock()
	select {
	case f.hits <- job.ID:
	default:
	}
	return f.answer(ctx, job, n)
}

func (f *fakeSender) times(id string) []time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.at[id])
}

// waitFor polls cond for up to 10 seconds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// The dispatcher over the store walks the retry ladder in virtual time, honours Retry-After,
// declares the job dead after the last step, and a replayed dead job gets a fresh ladder.
func testRetryLadderAndDead(t *testing.T, s queue.Store) {
	clock := queue.NewFakeClock(t0)
	fail := true
	var mu sync.Mutex
	sender := newFakeSender(clock, func(_ context.Context, _ *queue.Job, n int) queue.Result {
		mu.Lock()
		defer mu.Unlock()
		if !fail {
			return queue.Result{Status: 204}
		}
		if n == 2 {
			return queue.Result{Status: 429, Err: errors.New("429"), RetryAfter: 7 * time.Minute}
		}
		return queue.Result{Status: 500, Err: errors.New("500")}
	})
	var outcomes sync.Map
	d := queue.NewDispatcher(s, sender, queue.Options{Clock: clock, Schedule: []time.Duration{time.Minute, 2 * time.Minute, 3 * time.Minute},
		OnOutcome: func(j *queue.Job, _ queue.Result) { outcomes.Store(j.ID+fmt.Sprint(len(j.Attempts)), j.State) }})
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	defer d.Stop()
	if err := d.Update(func(tx queue.Tx) error { _, err := tx.Enqueue(newJob("l", "https://a.example/h", t0)); return err }); err != nil {
		t.Fatal(err)
	}
	// Attempts at 0, +1m, then +7m (Retry-After beats 2m), then +3m: dead after 4 attempts.
	steps := []time.Duration{time.Minute, 7 * time.Minute, 3 * time.Minute}
	for i, step := range steps {
		waitFor(t, fmt.Sprintf("attempt %d stored", i+1), func() bool { _, ok := outcomes.Load("l" + fmt.Sprint(i+1)); return ok })
		j := head(t, s, "l")
		if j.State != queue.StatePending || !j.DueAt.Equal(clock.Now().Add(step)) {
			t.Fatalf("after attempt %d: %s due %s, want pending due %s", i+1, j.State, j.DueAt, clock.Now().Add(step))
		}
		clock.Advance(step - time.Millisecond)
		time.Sleep(20 * time.Millisecond)
		if n := len(sender.times("l")); n != i+1 {
			t.Fatalf("attempt %d came before its time", n)
		}
		clock.Advance(time.Millisecond)
	}
	waitFor(t, "the job to die", func() bool { return head(t, s, "l").State == queue.StateDead })
	j := head(t, s, "l")
	if len(j.Attempts) != 4 || !j.FinishedAt.Equal(clock.Now()) {
		t.Errorf("dead job: %d attempts, finished %s", len(j.Attempts), j.FinishedAt)
	}
	var dead []string
	view(t, s, func(tx queue.Tx) error {
		return tx.FinishedHeads(queue.StateDead, time.Time{}, func(j *queue.Job) bool { dead = append(dead, j.ID); return true })
	})
	if fmt.Sprint(dead) != "[l]" {
		t.Errorf("dead jobs = %v", dead)
	}
	// Replayed: a fresh ladder, from now.
	mu.Lock()
	fail = false
	mu.Unlock()
	if err := d.Update(func(tx queue.Tx) error { _, err := queue.Replay(tx, "l", clock.Now()); return err }); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the replayed job's delivery", func() bool { return head(t, s, "l").State == queue.StateDelivered })
	if j := head(t, s, "l"); len(j.Attempts) != 5 || j.LadderBase != 4 {
		t.Errorf("after replay: %d attempts, ladder base %d", len(j.Attempts), j.LadderBase)
	}
	checkCounts(t, s)
}

// A job leased by the dispatcher stays pending in the store and is attempted once at a time;
// once the dispatcher stopped, it is due for the next one.
func testLeasesLiveInTheDispatcher(t *testing.T, s queue.Store) {
	release := make(chan struct{})
	sender := newFakeSender(queue.SystemClock{}, func(ctx context.Context, _ *queue.Job, _ int) queue.Result {
		select {
		case <-release:
			return queue.Result{Status: 204}
		case <-ctx.Done():
			return queue.Result{Err: ctx.Err()}
		}
	})
	d := queue.NewDispatcher(s, sender, queue.Options{})
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if err := d.Update(func(tx queue.Tx) error { _, err := tx.Enqueue(newJob("x", "https://a.example/h", now)); return err }); err != nil {
		t.Fatal(err)
	}
	<-sender.hits
	if _, ok := d.Leases()["x"]; !ok {
		t.Errorf("Leases = %v, want x", d.Leases())
	}
	if got := states(t, s, "x"); got != queue.StatePending {
		t.Errorf("a leased job is stored as %s, want pending", got)
	}
	d.Wake()
	time.Sleep(50 * time.Millisecond)
	if n := len(sender.times("x")); n != 1 {
		t.Errorf("a leased job was attempted %d times at once", n)
	}
	close(release)
	waitFor(t, "delivery", func() bool { return head(t, s, "x").State == queue.StateDelivered })
	// The lease ends once the round that stored the outcome is back, just after its commit.
	waitFor(t, "the lease to end after the outcome", func() bool { return len(d.Leases()) == 0 })
	d.Stop()
}

// A destination that hangs holds at most PerHost attempts, and the jobs of other destinations
// are delivered meanwhile, in due order per destination.
func testPerHostAndIsolation(t *testing.T, s queue.Store) {
	var mu sync.Mutex
	running, most := 0, 0
	var order []string
	sender := newFakeSender(queue.SystemClock{}, func(ctx context.Context, j *queue.Job, _ int) queue.Result {
		if strings.Contains(j.URL, "hang") {
			mu.Lock()
			running++
			most = max(most, running)
			mu.Unlock()
			<-ctx.Done() // hangs until the dispatcher stops
			mu.Lock()
			running--
			mu.Unlock()
			return queue.Result{Err: ctx.Err()}
		}
		mu.Lock()
		order = append(order, j.ID)
		mu.Unlock()
		return queue.Result{Status: 204}
	})
	now := time.Now()
	var jobs []*queue.Job
	for i := range 40 {
		jobs = append(jobs, newJob(fmt.Sprintf("h%02d", i), "https://hang.example/h", now.Add(-time.Hour+time.Duration(i)*time.Millisecond)))
	}
	for i := range 30 {
		jobs = append(jobs, newJob(fmt.Sprintf("f%02d", i), "https://fast.example/h", now.Add(-time.Minute+time.Duration(i)*time.Millisecond)))
	}
	enqueue(t, s, jobs...)
	d := queue.NewDispatcher(s, sender, queue.Options{Workers: 8, PerHost: 3})
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	defer d.Stop()
	waitFor(t, "the fast destination's jobs", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(order) == 30 && running == 3
	})
	time.Sleep(20 * time.Millisecond) // room for a wrong fourth attempt
	mu.Lock()
	defer mu.Unlock()
	if most != 3 {
		t.Errorf("%d attempts at once to the hanging destination, want PerHost (3)", most)
	}
	c := checkCounts(t, s)
	if c[queue.StateDelivered] != 30 || c[queue.StatePending] != 40 {
		t.Errorf("Counts = %v, want 30 delivered and 40 pending", c)
	}
}

// Every operation on a closed store fails with ErrClosed, never a panic.
func testErrClosedAfterClose(t *testing.T, s queue.Store) {
	enqueue(t, s, newJob("a", "https://a.example/h", t0))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.View(func(queue.Tx) error { return nil }); !errors.Is(err, queue.ErrClosed) {
		t.Errorf("View after Close = %v, want ErrClosed", err)
	}
	if err := s.Update(func(queue.Tx) error { return nil }); !errors.Is(err, queue.ErrClosed) {
		t.Errorf("Update after Close = %v, want ErrClosed", err)
	}
	if err := s.UpdateLazy(func(queue.Tx) error { return nil }); !errors.Is(err, queue.ErrClosed) {
		t.Errorf("UpdateLazy after Close = %v, want ErrClosed", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("a second Close = %v", err)
	}
}

// One worker delivers the due jobs in due order, taking turns over destinations.
func testDispatchInDueOrder(t *testing.T, s queue.Store) {
	now := time.Now()
	offsets := []int{5, 1, 9, 3, 7, 0, 8, 2, 6, 4}
	var jobs []*queue.Job
	for i, off := range offsets {
		jobs = append(jobs, newJob(fmt.Sprintf("a%d", off), "https://a.example/h", now.Add(-time.Hour+time.Duration(off)*time.Second)))
		if i < 3 {
			jobs = append(jobs, newJob(fmt.Sprintf("b%d", i), "https://b.example/h", now.Add(-time.Minute+time.Duration(i)*time.Second)))
		}
	}
	enqueue(t, s, jobs...)
	var mu sync.Mutex
	var order []string
	sender := newFakeSender(queue.SystemClock{}, func(_ context.Context, j *queue.Job, _ int) queue.Result {
		mu.Lock()
		order = append(order, j.ID)
		mu.Unlock()
		return queue.Result{Status: 204}
	})
	d := queue.NewDispatcher(s, sender, queue.Options{Workers: 1, PerHost: 1})
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	defer d.Stop()
	waitFor(t, "every delivery", func() bool { mu.Lock(); defer mu.Unlock(); return len(order) == len(jobs) })
	mu.Lock()
	defer mu.Unlock()
	var as, bs []string
	for _, id := range order {
		if id[0] == 'a' {
			as = append(as, id)
		} else {
			bs = append(bs, id)
		}
	}
	if fmt.Sprint(as) != "[a0 a1 a2 a3 a4 a5 a6 a7 a8 a9]" || fmt.Sprint(bs) != "[b0 b1 b2]" {
		t.Errorf("delivered a in order %v, b in order %v; want due order", as, bs)
	}
	// b's jobs are not held back behind all of a's: destinations take turns.
	if i := slices.Index(order, "b2"); i < 0 || i > 8 {
		t.Errorf("delivery order %v: b's jobs waited behind a's backlog", order)
	}
}

// A job due later than one under way at its destination is attempted at its time, with no
// other event to wake the dispatcher.
func testFutureJobBehindALeasedOne(t *testing.T, s queue.Store) {
	clock := queue.NewFakeClock(t0)
	sender := newFakeSender(clock, func(ctx context.Context, j *queue.Job, _ int) queue.Result {
		if j.ID == "first" {
			<-ctx.Done() // hangs until the dispatcher stops
			return queue.Result{Err: ctx.Err()}
		}
		return queue.Result{Status: 204}
	})
	enqueue(t, s, newJob("first", "https://a.example/h", t0), newJob("second", "https://a.example/h", t0.Add(time.Minute)))
	d := queue.NewDispatcher(s, sender, queue.Options{Clock: clock, PerHost: 2, Lease: time.Hour})
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	defer d.Stop()
	waitFor(t, "the first attempt", func() bool { return len(sender.times("first")) == 1 })
	time.Sleep(20 * time.Millisecond)
	if n := len(sender.times("second")); n != 0 {
		t.Fatal("the second job was attempted before it was due")
	}
	clock.Advance(time.Minute)
	waitFor(t, "the second job's delivery at its due time", func() bool { return head(t, s, "second").State == queue.StateDelivered })
}
