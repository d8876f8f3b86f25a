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

// leaseNext leases the first job a read-write scan at now offers, given busy, and returns its ID.
func leaseNext(t *testing.T, b *Badger, now time.Time, busy func(dest string) bool) string {
	t.Helper()
	var got string
	err := b.Update(func(tx Tx) error {
		_, err := tx.ScanDue(now, nil, busy, func(id, _ string) bool { got = id; return false })
		if err != nil || got == "" {
			return fmt.Errorf("scan offered nothing (%v)", err)
		}
		j, err := tx.Job(got)
		if err != nil {
			return err
		}
		j.State = StateLeased
		return tx.PutJob(j)
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
	for _, openAtEnd := range []bool{false, true} {
		t.Run(fmt.Sprintf("writer open when the scan ends: %v", openAtEnd), func(t *testing.T) {
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
					_, err := tx.Enqueue(&Job{ID: "early", URL: "http://x", DueAt: t0})
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
		if got, want := leaseNext(t, b, now, nil), fmt.Sprintf("j%02d", i); got != want {
			t.Fatalf("scan %d offered %q, want %q", i, got, want)
		}
	}
	if low := b.lw.from(""); low <= string(dueKey(t0, "")[len(prefixDue):]) {
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

// A destination that stays busy must neither hold the scans back nor see its oldest jobs
// overtaken: due jobs scans passed over again and again, or whose destination already has jobs set aside,
// are set aside too, in due order, so the due index's bound moves past them and, once the
// destination has room, its oldest job comes first.
func TestBusyDestinationKeepsOrderAndDoesNotHoldScansBack(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	b := openTestStore(t)
	err := b.Update(func(tx Tx) error {
		for i := range 70 {
			if _, err := tx.Enqueue(&Job{ID: fmt.Sprintf("a%02d", i), URL: "http://a/hook", DueAt: t0.Add(time.Duration(i) * time.Second)}); err != nil {
				return err
			}
		}
		for i := range 10 {
			if _, err := tx.Enqueue(&Job{ID: fmt.Sprintf("b%02d", i), URL: "http://b/hook", DueAt: t0.Add(time.Duration(100+i) * time.Second)}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	now := t0.Add(time.Hour)
	// scan leases the first job offered, with destination a busy or not.
	scan := func(aBusy bool) string {
		t.Helper()
		return leaseNext(t, b, now, func(dest string) bool { return aBusy && dest == Destination("http://a/hook") })
	}
	if got := scan(true); got != "b00" {
		t.Fatalf("first scan with a busy offered %s, want b00", got)
	}
	if got := scan(true); got != "b01" {
		t.Fatalf("second scan with a busy offered %s, want b01", got)
	}
	if low, last := b.lw.from(""), string(dueKey(t0.Add(69*time.Second), "a69")[len(prefixDue):]); low <= last {
		t.Fatalf("the due index's bound stays at a's jobs, which every scan would walk again")
	}
	for i := range 3 {
		if got, want := scan(false), fmt.Sprintf("a%02d", i); got != want {
			t.Fatalf("with room again, a's job %s came before %s", got, want)
		}
	}
}
