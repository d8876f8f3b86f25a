package queue

import (
	"fmt"
	"testing"
	"time"
)

func openTestStore(t *testing.T) *Badger {
	t.Helper()
	b, err := OpenBadger(t.TempDir(), BadgerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func dueIDs(t *testing.T, b *Badger, now time.Time) []string {
	t.Helper()
	var ids []string
	err := b.View(func(tx Tx) error {
		jobs, err := tx.Due(now, 100)
		for _, j := range jobs {
			ids = append(ids, j.ID)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

// deliverNext marks the first due job of dest's due index delivered and returns its ID, as the
// dispatcher's outcome of it would.
func deliverNext(t *testing.T, b *Badger, now time.Time, dest string) string {
	t.Helper()
	var got string
	err := b.Update(func(tx Tx) error {
		err := tx.PendingJobs(Destination(dest), func(id string, at time.Time) bool {
			if !at.After(now) {
				got = id
			}
			return false
		})
		if err != nil || got == "" {
			return fmt.Errorf("scan offered nothing (%v)", err)
		}
		j, err := tx.JobHead(got)
		if err != nil {
			return err
		}
		j.State, j.FinishedAt = StateDelivered, now
		return tx.PutJobHead(j)
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// A scan that began before an earlier job was committed must not raise the due index's bound
// past that job, whether the job's transaction committed during the scan or is still open when
// the scan ends.
func TestLowWaterKeepsJobsWrittenDuringAScan(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		openAtEnd bool
		url       string
	}{{false, "http://x"}, {true, "http://x"}, {false, "http://y"}, {true, "http://y"}} {
		openAtEnd := tc.openAtEnd
		t.Run(fmt.Sprintf("writer open when the scan ends: %v, to %s", openAtEnd, tc.url), func(t *testing.T) {
			b := openTestStore(t)
			put := func(id string, due time.Time) error {
				return b.Update(func(tx Tx) error { _, err := tx.Enqueue(&Job{ID: id, URL: "http://x", DueAt: due}); return err })
			}
			for i := range 5 {
				if err := put(fmt.Sprintf("late%d", i), t0.Add(time.Hour+time.Duration(i))); err != nil {
					t.Fatal(err)
				}
			}
			scanning, scanned := make(chan struct{}), make(chan struct{})
			writing, written := make(chan struct{}), make(chan struct{})
			go func() { // the writer of the earlier job
				<-scanning
				b.Update(func(tx Tx) error {
					_, err := tx.Enqueue(&Job{ID: "early", URL: tc.url, DueAt: t0})
					if openAtEnd {
						close(writing)
						<-scanned
					}
					return err
				})
				close(written)
			}()
			err := b.View(func(tx Tx) error {
				close(scanning)
				if !openAtEnd {
					<-written // committed after this snapshot was taken
				} else {
					<-writing
				}
				jobs, err := tx.Due(t0.Add(2*time.Hour), 100)
				if err == nil && (len(jobs) != 5 || jobs[0].ID != "late0") {
					err = fmt.Errorf("the scan saw %d jobs", len(jobs))
				}
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			close(scanned)
			<-written
			if ids := dueIDs(t, b, t0.Add(2*time.Hour)); len(ids) != 6 || ids[0] != "early" {
				t.Fatalf("due after the scan: %v, want early first then the 5 late ones", ids)
			}
		})
	}
}

// Leasing jobs one by one leaves deletion markers at the head of the due index; scans start
// past them and still find every job, including one enqueued later with an earlier due time.
func TestLowWaterFollowsLeasesAndEarlierEnqueues(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	b := openTestStore(t)
	err := b.Update(func(tx Tx) error {
		for i := range 50 {
			if _, err := tx.Enqueue(&Job{ID: fmt.Sprintf("j%02d", i), URL: "http://x", DueAt: t0.Add(time.Duration(i) * time.Second)}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	now := t0.Add(time.Hour)
	for i := range 40 {
		if got, want := deliverNext(t, b, now, "http://x"), fmt.Sprintf("j%02d", i); got != want {
			t.Fatalf("scan %d offered %q, want %q", i, got, want)
		}
	}
	if low, dest := b.lw.from(Destination("http://x")), Destination("http://x"); low <= string(dueKey(dest, t0, "")[len(prefixDue)+len(dest)+1:]) {
		t.Fatalf("the due index's bound did not follow the leases")
	}
	if err := b.Update(func(tx Tx) error { _, err := tx.Enqueue(&Job{ID: "back", URL: "http://x", DueAt: t0}); return err }); err != nil {
		t.Fatal(err)
	}
	ids := dueIDs(t, b, now)
	if len(ids) != 11 || ids[0] != "back" || ids[1] != "j40" {
		t.Fatalf("due = %v, want back, then j40..j49", ids)
	}
}

// A destination whose due index was emptied leaves the list of destinations once a scan found
// it empty, and comes back with its next job; a destination's backlog is not read by another
// destination's scans.
func TestDestinationsFollowTheirDueIndexes(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	b := openTestStore(t)
	err := b.Update(func(tx Tx) error {
		for i := range 70 {
			if _, err := tx.Enqueue(&Job{ID: fmt.Sprintf("a%02d", i), URL: "http://a/hook", DueAt: t0.Add(time.Duration(i) * time.Second)}); err != nil {
				return err
			}
		}
		_, err := tx.Enqueue(&Job{ID: "b00", URL: "http://b/hook", DueAt: t0.Add(100 * time.Second)})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	now := t0.Add(time.Hour)
	if got := deliverNext(t, b, now, "http://b/hook"); got != "b00" {
		t.Fatalf("b's scan offered %s, want b00", got)
	}
	dests := func() []string {
		var d []string
		if err := b.View(func(tx Tx) error {
			_, err := tx.Destinations(now, func(dest string, _ time.Time) bool { d = append(d, dest); return true })
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return d
	}
	if d := dests(); len(d) != 1 || d[0] != Destination("http://a/hook") {
		t.Fatalf("destinations = %q, want only a's", d)
	}
	if d := b.lw.dests(); len(d) != 1 {
		t.Fatalf("the store keeps %q as destinations, want only a's", d)
	}
	if err := b.Update(func(tx Tx) error {
		_, err := tx.Enqueue(&Job{ID: "b01", URL: "http://b/hook", DueAt: t0})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if d := dests(); len(d) != 2 {
		t.Fatalf("destinations = %q, want a's and b's", d)
	}
	for i := range 3 {
		if got, want := deliverNext(t, b, now, "http://a/hook"), fmt.Sprintf("a%02d", i); got != want {
			t.Fatalf("a's job %s came before %s", got, want)
		}
	}
}
