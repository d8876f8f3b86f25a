package storetest

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/faxhook/caddy-faxhook/queue"
)

// The cases below are what several processes sharing one store rely on. A store that several
// processes share is used by each through its own handle; here concurrent goroutines on one
// handle stand for them, which every Store must allow.

// goAll runs fn(0) … fn(n-1) on n goroutines released together and waits for them; it fails
// the test with the first error.
func goAll(t *testing.T, n int, fn func(g int) error) {
	t.Helper()
	var wg sync.WaitGroup
	start := make(chan struct{})
	errs := make(chan error, n)
	for g := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			if err := fn(g); err != nil {
				errs <- err
			}
		}()
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// Writers that each read one state record and, finding it missing, store it and enqueue a job
// serialise on the record: exactly one of them enqueues. This is how two instances that observe
// the same fax agree on who announces it.
func testTwoWritersOneStateRecord(t *testing.T, s queue.Store) {
	const keys, writers = 20, 2
	var enqueued atomic.Int64
	for k := range keys {
		key := fmt.Sprintf("fax/%d", k)
		goAll(t, writers, func(g int) error {
			return s.Update(func(tx queue.Tx) error {
				_, err := tx.State(key)
				if err == nil {
					return nil // another writer got there first
				}
				if !errors.Is(err, queue.ErrNotFound) {
					return err
				}
				if err := tx.PutState(key, []byte(fmt.Sprint("seen by ", g))); err != nil {
					return err
				}
				ok, err := tx.Enqueue(newJob(fmt.Sprintf("x%02d-%d", k, g), "https://a.example/h", t0))
				if ok {
					enqueued.Add(1)
				}
				return err
			})
		})
	}
	perKey := map[string]int{}
	view(t, s, func(tx queue.Tx) error {
		return tx.JobHeads(func(j *queue.Job) bool { perKey[j.ID[:3]]++; return true })
	})
	for k := range keys {
		if n := perKey[fmt.Sprintf("x%02d", k)]; n != 1 {
			t.Errorf("state record %d: %d jobs enqueued, want exactly 1", k, n)
		}
	}
	if c := checkCounts(t, s); c[queue.StatePending] != keys {
		t.Errorf("pending = %d, want %d", c[queue.StatePending], keys)
	}
	// A transaction that ran again after a conflict may have counted an enqueue it then lost.
	if n := enqueued.Load(); n < keys {
		t.Errorf("%d enqueues reported new, want at least %d", n, keys)
	}
}

// Dispatchers that claim one due job at once (read its head, and if it is due and unclaimed,
// store it with their Lease and DueAt moved to the lease's end) serialise on the job: exactly
// one claims it, and the others see its claim.
func testClaimIsExclusive(t *testing.T, s queue.Store) {
	const jobs, claimers = 10, 4
	var all []*queue.Job
	for i := range jobs {
		all = append(all, newJob(fmt.Sprintf("c%02d", i), "https://a.example/h", t0))
	}
	enqueue(t, s, all...)
	now := t0.Add(time.Minute)
	for i := range jobs {
		id := fmt.Sprintf("c%02d", i)
		var won sync.Map // claimer → claimed, as of each one's last (committed) run
		goAll(t, claimers, func(g int) error {
			token := fmt.Sprintf("claim-%d", g)
			return s.Update(func(tx queue.Tx) error {
				won.Store(g, false)
				j, err := tx.JobHead(id)
				if err != nil {
					return err
				}
				if j.State != queue.StatePending || j.DueAt.After(now) || j.Lease != "" {
					return nil // claimed by another, or not due
				}
				j.Lease, j.DueAt = token, now.Add(time.Hour)
				if err := tx.PutJobHead(j); err != nil {
					return err
				}
				won.Store(g, true)
				return nil
			})
		})
		var winners []string
		won.Range(func(g, ok any) bool {
			if ok.(bool) {
				winners = append(winners, fmt.Sprintf("claim-%d", g))
			}
			return true
		})
		if len(winners) != 1 {
			t.Fatalf("job %s: claimed by %v, want exactly one claimer", id, winners)
		}
		if j := head(t, s, id); j.Lease != winners[0] || !j.DueAt.Equal(now.Add(time.Hour)) || j.State != queue.StatePending {
			t.Errorf("job %s after the claims: lease %q due %s %s; want %s's claim", id, j.Lease, j.DueAt, j.State, winners[0])
		}
	}
	checkCounts(t, s)
}

// A chain takes jobs while its jobs are delivered, concurrently, each enqueue racing the
// delivery of the job before it: every job is delivered, in enqueue order, the chain never has
// more than one pending job, and none is left waiting.
func testChainPromotionUnderConcurrentEnqueue(t *testing.T, s queue.Store) {
	const chains, n = 3, 30
	stateOf := func(id string) (string, error) {
		var st string
		err := s.View(func(tx queue.Tx) error {
			j, err := tx.JobHead(id)
			if err == nil {
				st = j.State
			}
			return err
		})
		return st, err
	}
	delivered := make([][]string, chains)
	goAll(t, 2*chains, func(g int) error {
		c := g / 2
		url := fmt.Sprintf("https://chain%d.example/h", c)
		deadline := time.Now().Add(10 * time.Second)
		if g%2 == 0 {
			// The fax: each event as soon as the one before it is under way (pending, about
			// to be delivered), so that the enqueue meets the delivery.
			for i := range n {
				j := newJob(fmt.Sprintf("c%d-%03d", c, i), url, t0.Add(time.Duration(i)*time.Second))
				j.Chain = fmt.Sprintf("fax-%d", c)
				if err := s.Update(func(tx queue.Tx) error { _, err := tx.Enqueue(j); return err }); err != nil {
					return err
				}
				for {
					st, err := stateOf(j.ID)
					if err != nil {
						return err
					}
					if st != queue.StateWaiting {
						break
					}
					if time.Now().After(deadline) {
						return fmt.Errorf("job %s is still waiting after 10s: left behind", j.ID)
					}
					time.Sleep(100 * time.Microsecond)
				}
			}
			return nil
		}
		// The dispatcher: deliver the chain's pending job whenever there is one.
		dest := queue.Destination(url)
		for len(delivered[c]) < n {
			if time.Now().After(deadline) {
				return fmt.Errorf("chain %d: delivered %d of %d jobs in 10s", c, len(delivered[c]), n)
			}
			var pending []string
			err := s.View(func(tx queue.Tx) error {
				pending = nil
				return tx.PendingJobs(dest, func(id string, _ time.Time) bool { pending = append(pending, id); return true })
			})
			if err != nil {
				return err
			}
			if len(pending) > 1 {
				return fmt.Errorf("chain %d has %d pending jobs at once: %v", c, len(pending), pending)
			}
			if len(pending) == 0 {
				time.Sleep(100 * time.Microsecond)
				continue
			}
			id := pending[0]
			err = s.UpdateLazy(func(tx queue.Tx) error {
				j, err := tx.JobHead(id)
				if err != nil {
					return err
				}
				j.State, j.FinishedAt = queue.StateDelivered, j.DueAt
				return tx.PutJobHead(j)
			})
			if err != nil {
				return err
			}
			delivered[c] = append(delivered[c], id)
		}
		return nil
	})
	for c := range chains {
		var want []string
		for i := range n {
			want = append(want, fmt.Sprintf("c%d-%03d", c, i))
		}
		if strings.Join(delivered[c], " ") != strings.Join(want, " ") {
			t.Errorf("chain %d delivered in order %v, want enqueue order", c, delivered[c])
		}
	}
	if c := checkCounts(t, s); c[queue.StateDelivered] != chains*n {
		t.Errorf("Counts = %v, want %d delivered", c, chains*n)
	}
}
