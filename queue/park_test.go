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
