package queue

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// states returns the state of each job, "" for one not stored.
func states(t *testing.T, b *Badger, ids ...string) []string {
	t.Helper()
	out := make([]string, len(ids))
	err := b.View(func(tx Tx) error {
		for i, id := range ids {
			j, err := tx.JobHead(id)
			if errors.Is(err, ErrNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			out[i] = j.State
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// finish stores job id as delivered, as the dispatcher does.
func finish(t *testing.T, b *Badger, id string, at time.Time) {
	t.Helper()
	update(t, b, func(tx Tx) error {
		j, err := tx.JobHead(id)
		if err != nil {
			return err
		}
		j.State, j.FinishedAt, j.DueAt = StateDelivered, at, at
		return tx.PutJobHead(j)
	})
}

// enqueueChain enqueues jobs ids of chain C, due at t0, in one transaction.
func enqueueChain(t *testing.T, b *Badger, t0 time.Time, ids ...string) {
	t.Helper()
	update(t, b, func(tx Tx) error {
		for _, id := range ids {
			if _, err := tx.Enqueue(&Job{ID: id, URL: "http://a/hook", Chain: "C", DueAt: t0}); err != nil {
				return err
			}
		}
		return nil
	})
}

func wantStates(t *testing.T, b *Badger, want string, ids ...string) {
	t.Helper()
	if got := fmt.Sprint(states(t, b, ids...)); got != want {
		t.Errorf("states of %v: %s, want %s", ids, got, want)
	}
}

// chainKeyExists reports whether chain name has a record.
func chainKeyExists(t *testing.T, b *Badger, name string) bool {
	t.Helper()
	found := false
	err := b.db.View(func(txn *badger.Txn) error {
		_, err := txn.Get([]byte(prefixChain + name))
		found = err == nil
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}

// Jobs of one chain wait for the ones enqueued before them, whether enqueued in one transaction
// or several, and each becomes pending when the one before it finished. A job enqueued after the
// chain's jobs all finished is pending at once, and purging the last one drops the chain's record.
func TestChainJobsWaitInTurn(t *testing.T) {
	for _, oneTx := range []bool{false, true} {
		t.Run(fmt.Sprintf("oneTx=%v", oneTx), func(t *testing.T) {
			b := openTestStore(t)
			t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
			enqueue := func(tx Tx, id string) error {
				_, err := tx.Enqueue(&Job{ID: id, URL: "http://a/hook", Chain: "C", DueAt: t0})
				return err
			}
			if oneTx {
				update(t, b, func(tx Tx) error {
					for _, id := range []string{"a", "b", "c"} {
						if err := enqueue(tx, id); err != nil {
							return err
						}
					}
					return nil
				})
			} else {
				for _, id := range []string{"a", "b", "c"} {
					update(t, b, func(tx Tx) error { return enqueue(tx, id) })
				}
			}
			wantStates(t, b, "[pending waiting waiting]", "a", "b", "c")
			finish(t, b, "a", t0.Add(time.Minute))
			wantStates(t, b, "[delivered pending waiting]", "a", "b", "c")
			if got := dueIDs(t, b, t0.Add(time.Hour)); fmt.Sprint(got) != "[b]" {
				t.Errorf("due: %v, want [b]", got)
			}
			finish(t, b, "b", t0.Add(2*time.Minute))
			wantStates(t, b, "[delivered delivered pending]", "a", "b", "c")
			finish(t, b, "c", t0.Add(3*time.Minute))
			update(t, b, func(tx Tx) error { return enqueue(tx, "d") })
			wantStates(t, b, "[pending]", "d")
			finish(t, b, "d", t0.Add(4*time.Minute))
			if !chainKeyExists(t, b, "C") {
				t.Fatal("the chain has no record before its jobs are purged")
			}
			update(t, b, func(tx Tx) error {
				for _, id := range []string{"a", "b", "c", "d"} {
					if err := tx.DeleteJob(id); err != nil {
						return err
					}
				}
				return nil
			})
			if chainKeyExists(t, b, "C") {
				t.Error("the chain's record outlived its last job")
			}
		})
	}
}

// A job replayed while it waited is not made pending a second time when the job before it
// finishes: by then it may have been delivered.
func TestReplayedWaitingJobIsNotPromotedAgain(t *testing.T) {
	b := openTestStore(t)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	enqueueChain(t, b, t0, "a", "b")
	update(t, b, func(tx Tx) error { _, err := Replay(tx, "b", t0); return err })
	finish(t, b, "b", t0.Add(time.Minute))
	finish(t, b, "a", t0.Add(2*time.Minute))
	wantStates(t, b, "[delivered delivered]", "a", "b")
}
