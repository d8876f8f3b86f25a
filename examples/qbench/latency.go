package qbench

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/faxhook/caddy-faxhook/queue"
	"github.com/faxhook/caddy-faxhook/queue/httpsend"
)

// latencyResult is the enqueue-to-delivery latency of the jobs to healthy destinations.
type latencyResult struct {
	p50, p99 time.Duration
	n        int
	hung     int64 // attempts the hanging receivers held until the sender gave up
}

// latencyRun enqueues jobs one per transaction at rate per second for d, round-robin over dests
// receivers of which, when hang is set, the second half never answer (the sender gives up after
// timeout). It returns the latency from enqueue to arrival at the receiver of the jobs sent to
// the first half, which answer at once in both runs.
func latencyRun(ctx context.Context, parent string, syncWrites, hang bool, o Options) (latencyResult, error) {
	return latencyRunOn(ctx, badgerStore(parent, "qbench-latency-", syncWrites), hang, o)
}

// latencyRunOn is latencyRun on a fresh store that open returns.
func latencyRunOn(ctx context.Context, open opener, hang bool, o Options) (latencyResult, error) {
	var enqueued sync.Map // event ID → time.Time of the enqueue
	var mu sync.Mutex
	var lat []time.Duration
	var healthyDone atomic.Int64
	allDone := make(chan struct{})
	finish := sync.OnceFunc(func() { close(allDone) })
	var expect atomic.Int64
	expect.Store(-1)
	onHit := func(eventID string, at time.Time) {
		v, ok := enqueued.Load(eventID)
		if !ok {
			return
		}
		mu.Lock()
		lat = append(lat, at.Sub(v.(time.Time)))
		mu.Unlock()
		if healthyDone.Add(1) == expect.Load() {
			finish()
		}
	}
	healthy := o.Dests - o.Dests/2
	rcvs := make([]*receiver, o.Dests)
	urls := make([]string, o.Dests)
	var hung atomic.Int64
	for i := range rcvs {
		rcvs[i] = newReceiver(hang && i >= healthy, onHit)
		rcvs[i].held = &hung
		urls[i] = rcvs[i].URL()
	}
	defer func() {
		for _, r := range rcvs {
			r.Close()
		}
	}()
	st, cleanup, err := open()
	if err != nil {
		return latencyResult{}, err
	}
	defer cleanup()
	sender := httpsend.New(httpsend.Options{Token: benchToken, Timeout: o.HangTimeout})
	defer sender.CloseIdleConnections()
	disp := queue.NewDispatcher(st, sender, queue.Options{Workers: o.Workers, PerHost: o.PerHost,
		Lease: o.HangTimeout + 30*time.Second})
	if err := disp.Start(); err != nil {
		return latencyResult{}, err
	}
	defer disp.Stop()

	interval := time.Second / time.Duration(o.Rate)
	total := int(o.LatencyDuration / interval)
	nHealthy := 0
	start := time.Now()
	for i := 0; i < total && ctx.Err() == nil; i++ {
		if wait := time.Until(start.Add(time.Duration(i) * interval)); wait > 0 {
			time.Sleep(wait)
		}
		dest := i % o.Dests
		now := time.Now()
		j := makeJob(int64(5_000_000+i), urls[dest], now, now)
		if dest < healthy {
			nHealthy++
			enqueued.Store(j.EventID, now)
		}
		if err := disp.Update(func(tx queue.Tx) error { _, err := tx.Enqueue(j); return err }); err != nil {
			return latencyResult{}, fmt.Errorf("enqueueing: %w", err)
		}
	}
	if expect.Store(int64(nHealthy)); healthyDone.Load() >= int64(nHealthy) {
		finish()
	}
	select {
	case <-allDone:
	case <-ctx.Done():
		return latencyResult{}, ctx.Err()
	case <-time.After(time.Minute):
		return latencyResult{}, fmt.Errorf("only %d of %d healthy jobs delivered a minute after the last enqueue", healthyDone.Load(), nHealthy)
	}
	mu.Lock()
	defer mu.Unlock()
	slices.Sort(lat)
	return latencyResult{p50: quantile(lat, 0.50), p99: quantile(lat, 0.99), n: len(lat), hung: hung.Load()}, nil
}

// quantile returns the q-quantile of sorted samples (nearest rank).
func quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.5) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}
