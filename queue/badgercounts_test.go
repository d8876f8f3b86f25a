package queue

import (
	"fmt"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// Count changes are folded into the base record in the background, so Counts reads a few keys;
// the counts survive a reopen, with changes left unfolded by the last run.
func TestCountsFoldAndSurviveReopen(t *testing.T) {
	dir := t.TempDir()
	b, err := OpenBadger(dir, BadgerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 3 * foldEvery {
		if err := b.Update(func(tx Tx) error {
			_, err := tx.Enqueue(&Job{ID: fmt.Sprintf("j%05d", i), URL: "http://x", DueAt: t0})
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for countKeys(t, b, prefixDelta) >= foldEvery {
		if time.Now().After(deadline) {
			t.Fatalf("%d count changes left unfolded", countKeys(t, b, prefixDelta))
		}
		time.Sleep(10 * time.Millisecond)
	}
	want := map[string]int64{StateWaiting: 0, StatePending: 3 * foldEvery, StateDelivered: 0, StateDead: 0}
	check := func() {
		t.Helper()
		var got map[string]int64
		if err := b.View(func(tx Tx) (err error) { got, err = tx.Counts(); return err }); err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("Counts = %v, want %v", got, want)
		}
	}
	check()
	// Unfolded changes, then a reopen.
	for i := range 10 {
		if err := b.Update(func(tx Tx) error {
			j, err := tx.JobHead(fmt.Sprintf("j%05d", i))
			if err != nil {
				return err
			}
			j.State, j.FinishedAt = StateDead, t0
			return tx.PutJobHead(j)
		}); err != nil {
			t.Fatal(err)
		}
	}
	want[StatePending], want[StateDead] = 3*foldEvery-10, 10
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
	// Numbering goes on after the changes stored: a new change is not taken for a folded one.
	if err := b.Update(func(tx Tx) error { _, err := tx.Enqueue(&Job{ID: "new", URL: "http://x", DueAt: t0}); return err }); err != nil {
		t.Fatal(err)
	}
	want[StatePending]++
	check()
	if err := b.foldCounts(); err != nil {
		t.Fatal(err)
	}
	check()
	if n := countKeys(t, b, prefixDelta); n != 0 {
		t.Errorf("%d count changes left after a fold with nothing under way", n)
	}
}

// A fold takes only settled changes: one numbered lower whose transaction is still open when
// the fold runs is counted once it commits.
func TestFoldWaitsForOpenTransactions(t *testing.T) {
	b := openTestStore(t)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	inTx, release, done := make(chan struct{}), make(chan struct{}), make(chan error)
	go func() {
		first := true
		done <- b.Update(func(tx Tx) error {
			if _, err := tx.Enqueue(&Job{ID: "slow", URL: "http://x", DueAt: t0}); err != nil {
				return err
			}
			if first {
				first = false
				close(inTx)
				<-release
			}
			return nil
		})
	}()
	<-inTx
	// The slow transaction takes its number when fn returns: take one for it now, as a
	// transaction that numbered its change and has not committed yet.
	seq := b.deltas.take()
	if err := b.Update(func(tx Tx) error { _, err := tx.Enqueue(&Job{ID: "fast", URL: "http://x", DueAt: t0}); return err }); err != nil {
		t.Fatal(err)
	}
	if err := b.foldCounts(); err != nil {
		t.Fatal(err)
	}
	err := b.db.Update(func(txn *badger.Txn) error {
		return txn.Set(deltaKey(seq), (&counts{0, 1, 0, 0}).encode())
	})
	b.deltas.done(seq, err == nil)
	if err != nil {
		t.Fatal(err)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	var got map[string]int64
	if err := b.View(func(tx Tx) (err error) { got, err = tx.Counts(); return err }); err != nil {
		t.Fatal(err)
	}
	if got[StatePending] != 3 {
		t.Fatalf("pending = %d, want 3: a change that committed after a fold of later ones was lost", got[StatePending])
	}
}

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
