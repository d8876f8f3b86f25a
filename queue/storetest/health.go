package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/faxhook/caddy-faxhook/queue"
)

// testDestinationHealth runs the destination-health scenario with the dispatcher leasing in
// memory (a store of one process) and claiming in the store (a fleet's Shared store).
func testDestinationHealth(t *testing.T, s queue.Store) {
	if _, ok := s.(queue.Shared); ok {
		healthScenario(t, s)
		return
	}
	t.Run("Leased", func(t *testing.T) { healthScenario(t, s) })
	t.Run("Claimed", func(t *testing.T) { healthScenario(t, asShared(s)) })
}

// healthScenario: a destination fails until it is down; while it is down it gets exactly one
// probe per probe interval, and another destination's jobs go out at once; when a probe
// succeeds, its whole backlog goes out at once, each chain in order.
func healthScenario(t *testing.T, s queue.Store) {
	prefix := fmt.Sprintf("%T-", s)
	clock := queue.NewFakeClock(t0)
	var up atomic.Bool
	var mu sync.Mutex
	calls := map[string]int{} // attempts per destination
	var okOrder []string      // jobs of the down destination delivered, in order
	var okAt []time.Time      // and when (virtual)
	sender := senderFunc(func(_ context.Context, j *queue.Job) queue.Result {
		dest := queue.Destination(j.URL)
		mu.Lock()
		defer mu.Unlock()
		calls[dest]++
		if dest == "https://down.example" && !up.Load() {
			return queue.Result{Status: 503, Err: errors.New("503")}
		}
		if dest == "https://down.example" {
			okOrder = append(okOrder, j.ID)
			okAt = append(okAt, clock.Now())
		}
		return queue.Result{Status: 204}
	})
	count := func(dest string) int {
		mu.Lock()
		defer mu.Unlock()
		return calls[dest]
	}
	var stored atomic.Int64
	const interval = 30 * time.Second
	d := queue.NewDispatcher(s, sender, queue.Options{Clock: clock, Instance: "h", FleetScan: 20 * time.Millisecond,
		Health:    queue.Health{Failures: 2, ProbeInterval: interval},
		OnOutcome: func(*queue.Job, queue.Result) { stored.Add(1) }})
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	defer d.Stop()
	var downIDs, healthyIDs []string
	var jobs []*queue.Job
	for c := range 3 {
		for k := range 2 {
			id := fmt.Sprintf("%sdown-%d-%d", prefix, c, k)
			j := chainJob(id, fmt.Sprintf("%schain-%d", prefix, c), t0)
			j.URL, j.CreatedAt = "https://down.example/h", t0.Add(time.Duration(2*c+k)*time.Millisecond)
			jobs = append(jobs, j)
			downIDs = append(downIDs, id)
		}
	}
	if err := d.Update(func(tx queue.Tx) error { _, err := queue.EnqueueAll(tx, jobs); return err }); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the destination to go down", func() bool { return d.DestinationsDown() == 1 })
	waitFor(t, "the attempts under way to end", func() bool { return len(d.Leases()) == 0 && int(stored.Load()) == count("https://down.example") })
	before := count("https://down.example")

	// Another destination is served at once while this one is down.
	for i := range 3 {
		id := fmt.Sprintf("%shealthy-%d", prefix, i)
		healthyIDs = append(healthyIDs, id)
		j := newJob(id, "https://healthy.example/h", t0)
		if err := d.Update(func(tx queue.Tx) error { _, err := tx.Enqueue(j); return err }); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range healthyIDs {
		waitFor(t, id+" delivered", func() bool { return head(t, s, id).State == queue.StateDelivered })
	}

	// Ten probe intervals: one probe each.
	for i := 1; i <= 10; i++ {
		clock.Advance(interval)
		waitFor(t, fmt.Sprintf("probe %d", i), func() bool {
			return count("https://down.example") == before+i && int(stored.Load()) == before+i+len(healthyIDs)
		})
	}
	time.Sleep(50 * time.Millisecond)
	if n := count("https://down.example"); n != before+10 {
		t.Fatalf("%d attempts in ten probe intervals, want 10", n-before)
	}

	// Back: the next probe succeeds and every job goes out at that virtual moment.
	up.Store(true)
	clock.Advance(interval)
	back := clock.Now()
	for _, id := range downIDs {
		waitFor(t, id+" delivered", func() bool { return head(t, s, id).State == queue.StateDelivered })
	}
	mu.Lock()
	defer mu.Unlock()
	for _, at := range okAt {
		if !at.Equal(back) {
			t.Fatalf("a delivery at %s, after the destination was back at %s", at, back)
		}
	}
	pos := map[string]int{}
	for i, id := range okOrder {
		pos[id] = i
	}
	for c := range 3 {
		a, b := fmt.Sprintf("%sdown-%d-0", prefix, c), fmt.Sprintf("%sdown-%d-1", prefix, c)
		if pos[a] > pos[b] {
			t.Fatalf("chain %d delivered out of order: %v", c, okOrder)
		}
	}
	if d.DestinationsDown() != 0 {
		t.Fatal("the destination is still down")
	}
}
