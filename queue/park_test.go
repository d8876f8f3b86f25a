package queue

import (
	"fmt"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// A read-write scan passes over the first parkAfter due jobs of busy destinations and sets aside
// only those after them.
func TestScanSetsAsideAfterParkAfter(t *testing.T) {
	for _, n := range []int{10, parkAfter, parkAfter + 30} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			b := openTestStore(t)
			now := time.Now()
			update(t, b, func(tx Tx) error {
				for i := range n {
					if _, err := tx.Enqueue(&Job{ID: fmt.Sprintf("j%03d", i), URL: "http://busy", DueAt: now}); err != nil {
						return err
					}
				}
				return nil
			})
			update(t, b, func(tx Tx) error {
				_, err := tx.ScanDue(now, nil, func(string) bool { return true }, func(string, string) bool { return true })
				return err
			})
			if got, want := countKeys(t, b, prefixPark), max(0, n-parkAfter); got != want {
				t.Errorf("%d jobs set aside, want %d", got, want)
			}
			if got, want := countKeys(t, b, prefixDue), min(n, parkAfter); got != want {
				t.Errorf("%d jobs left in the due index, want %d", got, want)
			}
			if got := len(dueIDs(t, b, now)); got != min(n, 100) {
				t.Errorf("Due lists %d jobs, want %d", got, min(n, 100))
			}
		})
	}
}

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

// Destinations that take turns at their limits, as fast ones do under load, get none of their
// jobs set aside: a scan counts the jobs it passes over per destination, and a job is set aside
// only after passesBeforeParking scans passed over it. Three busy destinations with 40 due
// jobs each (120 in all, more than parkAfter) stand before the one with room.
func TestDestinationsTakingTurnsAreNotSetAside(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	b := openTestStore(t)
	update(t, b, func(tx Tx) error {
		for i := range 40 {
			for _, d := range []string{"a", "b", "c"} {
				_, err := tx.Enqueue(&Job{ID: fmt.Sprintf("%s%02d", d, i), URL: "http://" + d + "/hook", DueAt: t0.Add(time.Duration(i) * time.Second)})
				if err != nil {
					return err
				}
			}
		}
		for i := range passesBeforeParking {
			if _, err := tx.Enqueue(&Job{ID: fmt.Sprintf("z%02d", i), URL: "http://z/hook", DueAt: t0.Add(time.Minute)}); err != nil {
				return err
			}
		}
		return nil
	})
	now := t0.Add(time.Hour)
	onlyZ := func(dest string) bool { return dest != Destination("http://z/hook") }
	for i := range passesBeforeParking - 1 {
		if got, want := leaseNext(t, b, now, onlyZ), fmt.Sprintf("z%02d", i); got != want {
			t.Fatalf("scan %d offered %s, want %s", i, got, want)
		}
	}
	if n := countKeys(t, b, prefixPark); n != 0 {
		t.Errorf("%d jobs set aside after %d scans, want none", n, passesBeforeParking-1)
	}
	// With room again, destination a's jobs come in order.
	if got := leaseNext(t, b, now, nil); got != "a00" {
		t.Errorf("with room again, the first job offered is %s, want a00", got)
	}
}
