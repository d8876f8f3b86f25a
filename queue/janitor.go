package queue

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"
	"go.uber.org/zap"
)

// Retention defaults of JanitorOptions.
const (
	// DefaultDeliveredRetention is how long a delivered job is kept, for the admin API and replay.
	DefaultDeliveredRetention = 7 * 24 * time.Hour
	// DefaultDeadRetention is how long a dead job is kept for replay.
	DefaultDeadRetention = 30 * 24 * time.Hour
	// DefaultJanitorInterval is how often the janitor sweeps.
	DefaultJanitorInterval = time.Hour
)

// JanitorOptions configures the janitor that keeps the store's size bounded.
type JanitorOptions struct {
	// DeliveredRetention is how long delivered jobs are kept after they finished. Zero means
	// DefaultDeliveredRetention (7 days); negative keeps them forever.
	DeliveredRetention time.Duration
	// DeadRetention is how long dead jobs are kept after they died. Zero means
	// DefaultDeadRetention (30 days); negative keeps them forever.
	DeadRetention time.Duration
	// Interval is the time between sweeps; the first sweep runs at once. Default 1 hour.
	Interval time.Duration
	// Clock tells the time; default SystemClock. Tests inject a FakeClock.
	Clock Clock
	// Logger receives one entry per sweep that purged something or failed; nil discards.
	Logger *zap.Logger
	// OnSweep, if set, is called after every sweep with its outcome (for metrics and tests).
	OnSweep func(SweepResult)
}

// withDefaults returns o with its zero fields set to their defaults.
func (o JanitorOptions) withDefaults() JanitorOptions {
	if o.DeliveredRetention == 0 {
		o.DeliveredRetention = DefaultDeliveredRetention
	}
	if o.DeadRetention == 0 {
		o.DeadRetention = DefaultDeadRetention
	}
	if o.Interval <= 0 {
		o.Interval = DefaultJanitorInterval
	}
	if o.Clock == nil {
		o.Clock = SystemClock{}
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	return o
}

// SweepResult is the outcome of one janitor sweep.
type SweepResult struct {
	// At is when the sweep started, by the janitor's clock.
	At time.Time
	// Delivered and Dead count the jobs purged.
	Delivered, Dead int
	// Err is the first error met, nil if the sweep completed.
	Err error
}

// Sweep purges, once, the delivered and dead jobs that finished longer ago than their retention
// before now. A negative retention keeps those jobs; zero means the default.
func Sweep(s Store, opts JanitorOptions, now time.Time) SweepResult {
	opts = opts.withDefaults()
	res := SweepResult{At: now}
	if opts.DeliveredRetention > 0 {
		n, err := Purge(s, StateDelivered, now.Add(-opts.DeliveredRetention))
		res.Delivered = n
		if err != nil {
			res.Err = fmt.Errorf("purging delivered jobs: %w", err)
			return res
		}
	}
	if opts.DeadRetention > 0 {
		n, err := Purge(s, StateDead, now.Add(-opts.DeadRetention))
		res.Dead = n
		if err != nil {
			res.Err = fmt.Errorf("purging dead jobs: %w", err)
		}
	}
	return res
}

// janitor is the background loop of StartJanitor.
type janitor struct {
	opts atomic.Pointer[JanitorOptions]
	stop chan struct{}
	done chan struct{}
	once sync.Once
}

func (j *janitor) halt() {
	j.once.Do(func() { close(j.stop) })
	<-j.done
}

// StartJanitor starts the store's janitor: at once and then every opts.Interval it purges
// delivered and dead jobs past their retention (Sweep) and, when it purged any, has Badger
// rewrite value-log files that are mostly garbage, so that the disk footprint follows the live
// data. A store has at most one janitor: calling StartJanitor again while it runs replaces its
// options (from the next sweep on) and returns the same stop. stop ends the janitor and waits for
// a sweep under way; Close stops it too, so a caller that keeps the janitor for the store's
// lifetime may ignore stop.
func (b *Badger) StartJanitor(opts JanitorOptions) (stop func()) {
	opts = opts.withDefaults()
	b.janMu.Lock()
	defer b.janMu.Unlock()
	if b.closing {
		return func() {}
	}
	if b.jan != nil {
		b.jan.opts.Store(&opts)
		j := b.jan
		return func() { b.stopJanitor(j) }
	}
	j := &janitor{stop: make(chan struct{}), done: make(chan struct{})}
	j.opts.Store(&opts)
	b.jan = j
	go b.janitorLoop(j)
	return func() { b.stopJanitor(j) }
}

// stopJanitor stops j and forgets it if it is still the store's janitor.
func (b *Badger) stopJanitor(j *janitor) {
	b.janMu.Lock()
	if b.jan == j {
		b.jan = nil
	}
	b.janMu.Unlock()
	j.halt()
}

func (b *Badger) janitorLoop(j *janitor) {
	defer close(j.done)
	for {
		opts := *j.opts.Load()
		// Ask for the next tick before sweeping, so that a virtual clock advanced right after a
		// sweep reported fires it.
		next := opts.Clock.After(opts.Interval)
		res := Sweep(b, opts, opts.Clock.Now())
		if errors.Is(res.Err, ErrClosed) {
			return
		}
		if res.Delivered+res.Dead > 0 {
			if err := b.CollectGarbage(); err != nil && !errors.Is(err, ErrClosed) && res.Err == nil {
				res.Err = err
			}
		}
		switch {
		case errors.Is(res.Err, ErrNoSpace):
			// Deleting writes too; the store logged the shortage, the next sweep tries again.
			opts.Logger.Debug("purging finished webhook jobs waits for space", zap.Error(res.Err))
		case res.Err != nil:
			opts.Logger.Error("purging finished webhook jobs", zap.Int("delivered", res.Delivered),
				zap.Int("dead", res.Dead), zap.Error(res.Err))
		case res.Delivered+res.Dead > 0:
			opts.Logger.Info("purged finished webhook jobs past their retention",
				zap.Int("delivered", res.Delivered), zap.Int("dead", res.Dead))
		}
		if opts.OnSweep != nil {
			opts.OnSweep(res)
		}
		select {
		case <-j.stop:
			return
		case <-next:
		}
	}
}

// CollectGarbage has Badger rewrite the value-log files of which at least half is garbage, until
// none is left. Values under 1 MiB live in the LSM tree, whose compactions reclaim deleted data
// by themselves; the value log holds the larger ones (a received fax's big PDF, in every version
// of its job). Badger counts value-log garbage only when a compaction drops the entries pointing
// to it, so deletions still in the memtable or the upper levels free nothing yet. When the value
// log has grown by deepGCStep since the last time, CollectGarbage therefore also flushes the
// memtable and compacts the tree into one level (writes pause for the flush; the compaction
// rewrites the tree once), then collects again. Store operations wait while a value-log file
// is rewritten.
func (b *Badger) CollectGarbage() error {
	if err := b.valueLogGC(); err != nil {
		return err
	}
	b.gcMu.Lock()
	defer b.gcMu.Unlock()
	if vlogSize(b.dir) < b.deepGCFloor+b.deepGCStep {
		return nil
	}
	if err := b.flushAndCompact(); err != nil {
		return err
	}
	if err := b.valueLogGC(); err != nil {
		return err
	}
	b.deepGCFloor = vlogSize(b.dir)
	return nil
}

// flushAndCompact flushes the memtables and compacts the tree into one level, so that Badger
// counts the value-log garbage of every deletion.
func (b *Badger) flushAndCompact() error {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if err := b.writable(); err != nil { // the flush and the compaction write table files
		return fmt.Errorf("compacting %s: %w", b.dir, err)
	}
	if err := b.db.Update(func(txn *badger.Txn) error { return txn.Set([]byte(keyFlushMarker), nil) }); err != nil {
		return fmt.Errorf("collecting value-log garbage in %s: %w", b.dir, err)
	}
	if err := b.db.DropPrefix([]byte(keyFlushMarker)); err != nil { // flushes the memtables
		return fmt.Errorf("flushing memtables in %s: %w", b.dir, err)
	}
	if err := b.db.Flatten(2); err != nil {
		return fmt.Errorf("compacting %s: %w", b.dir, err)
	}
	return nil
}

// valueLogGC rewrites value-log files at least half garbage until there is none. It holds the
// store exclusively: Badger's rewrite reads state that concurrent commits write unguarded.
func (b *Badger) valueLogGC() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.writable(); err != nil {
		if errors.Is(err, ErrClosed) {
			return ErrClosed
		}
		// A rewrite copies live values to a new value-log file before it deletes the old one:
		// short of space, it waits for the next round.
		return nil
	}
	for {
		err := b.db.RunValueLogGC(0.5)
		if err == nil {
			continue
		}
		if errors.Is(err, badger.ErrNoRewrite) || errors.Is(err, badger.ErrRejected) {
			return nil
		}
		return fmt.Errorf("collecting value-log garbage in %s: %w", b.dir, err)
	}
}

// vlogSize is the size of the value-log files in dir, 0 if it cannot be read.
func vlogSize(dir string) int64 {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0
	}
	var n int64
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".vlog") {
			if fi, err := e.Info(); err == nil {
				n += fi.Size()
			}
		}
	}
	return n
}
