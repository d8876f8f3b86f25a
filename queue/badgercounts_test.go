package queue

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// storeCounts returns what Counts answers in a View.
func storeCounts(t *testing.T, b *Badger) map[string]int64 {
	t.Helper()
	var got map[string]int64
	if err := b.View(func(tx Tx) (err error) { got, err = tx.Counts(); return err }); err != nil {
		t.Fatal(err)
	}
	return got
}

// The counts follow every change of state, survive a reopen, and include a transaction's own
// changes before it commits.
func TestCountsFollowChangesAndSurviveReopen(t *testing.T) {
	dir := t.TempDir()
	b, err := OpenBadger(dir, BadgerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 30 {
		update(t, b, func(tx Tx) error {
			_, err := tx.Enqueue(&Job{ID: fmt.Sprintf("j%05d", i), URL: "http://x", Chain: fmt.Sprint(i % 20), DueAt: t0})
			return err
		})
	}
	want := map[string]int64{StateWaiting: 10, StatePending: 20, StateDelivered: 0, StateDead: 0}
	check := func() {
		t.Helper()
		if got := storeCounts(t, b); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("Counts = %v, want %v", got, want)
		}
	}
	check()
	for i := range 10 {
		finish(t, b, fmt.Sprintf("j%05d", i), t0) // each makes the job waiting behind it pending
	}
	want[StateWaiting], want[StateDelivered] = 0, 10
	check()
	update(t, b, func(tx Tx) error {
		if err := tx.DeleteJob("j00000"); err != nil {
			return err
		}
		got, err := tx.Counts()
		if err == nil && got[StateDelivered] != 9 {
			t.Errorf("Counts in the deleting transaction: %v, want 9 delivered", got)
		}
		return err
	})
	want[StateDelivered] = 9
	check()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	b, err = OpenBadger(dir, BadgerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	check()
	update(t, b, func(tx Tx) error { _, err := tx.Enqueue(&Job{ID: "new", URL: "http://x", DueAt: t0}); return err })
	want[StatePending]++
	check()
}

// Transactions that change counts concurrently, some of them conflicting and retried, some
// failing, leave the counts equal to the jobs stored.
func TestCountsUnderConcurrentWriters(t *testing.T) {
	b := openTestStore(t)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	const writers, each = 8, 40
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				id := fmt.Sprintf("w%d-%03d", w, i)
				err := b.Update(func(tx Tx) error {
					// Every writer reads and writes the same state record: they conflict.
					if _, err := tx.State("shared"); err != nil && !errors.Is(err, ErrNotFound) {
						return err
					}
					if err := tx.PutState("shared", []byte(id)); err != nil {
						return err
					}
					if _, err := tx.Enqueue(&Job{ID: id, URL: "http://x", Chain: fmt.Sprint(i % 3), DueAt: t0}); err != nil {
						return err
					}
					if i%5 == 0 {
						return errSkip // nothing of it takes effect
					}
					return nil
				})
				// A transaction that lost 10 conflicts in a row took no effect either.
				if err != nil && !errors.Is(err, errSkip) && !errors.Is(err, badger.ErrConflict) {
					t.Error(err)
					return
				}
				if i%7 == 0 {
					err := b.Update(func(tx Tx) error {
						j, err := tx.JobHead(id)
						if errors.Is(err, ErrNotFound) {
							return nil
						}
						if err != nil {
							return err
						}
						j.State, j.FinishedAt = StateDelivered, t0
						return tx.PutJobHead(j)
					})
					if err != nil && !errors.Is(err, badger.ErrConflict) {
						t.Error(err)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	want := counts{}
	err := b.View(func(tx Tx) error {
		return tx.JobHeads(func(j *Job) bool { want.add(j.State, 1); return true })
	})
	if err != nil {
		t.Fatal(err)
	}
	got := storeCounts(t, b)
	for i, s := range countedStates {
		if got[s] != want[i] {
			t.Errorf("Counts = %v; the jobs stored are %v (waiting, pending, delivered, dead)", got, want)
			break
		}
	}
}

var errSkip = errors.New("skipped")

// A store written before the layout had a version is refused, with a message that says what to
// do; an empty one gets the version.
func TestUnversionedStoreIsRefused(t *testing.T) {
	dir := t.TempDir()
	b, err := OpenBadger(dir, BadgerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.db.Update(func(txn *badger.Txn) error {
		if err := txn.Set([]byte(prefixJob+"old"), []byte{1}); err != nil {
			return err
		}
		return txn.Delete([]byte(keyFormat))
	}); err != nil {
		t.Fatal(err)
	}
	b.Close()
	if _, err := OpenBadger(dir, BadgerOptions{}); err == nil {
		t.Fatal("a store without a format version, holding jobs, was opened")
	}
}

// countKeys counts the keys with prefix.
func countKeys(t *testing.T, b *Badger, prefix string) int {
	t.Helper()
	n := 0
	err := b.db.View(func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.Prefix = []byte(prefix)
		it := txn.NewIterator(opts)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			n++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}
