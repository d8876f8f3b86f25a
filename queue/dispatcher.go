package queue

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// MaxRetryAfter caps how long a receiver's Retry-After may postpone a retry.
const MaxRetryAfter = 6 * time.Hour

// Options configures a Dispatcher.
type Options struct {
	// Schedule holds the delay before each retry; len(Schedule)+1 attempts are made in all.
	// Default: DefaultSchedule (Phaxio's ladder).
	Schedule []time.Duration
	// Workers is how many deliveries may be under way at once. Default 16.
	Workers int
	// Lease is how long a leased job stays claimed; it must outlive a sender's timeout.
	// Default 1 minute.
	Lease time.Duration
	// Clock tells the time; default SystemClock. Tests inject a FakeClock.
	Clock Clock
	// Logger receives one entry per attempt outcome; nil discards.
	Logger *zap.Logger
	// OnOutcome, if set, is called after each attempt's outcome is stored.
	OnOutcome func(job *Job, res Result)
}

// Dispatcher delivers due jobs: it leases them, hands them to the sender, and stores the outcome
// (delivered, the next retry, or dead). Exactly one dispatcher may run over a store.
type Dispatcher struct {
	store  Store
	sender Sender
	opts   Options
	log    *zap.Logger

	wake     chan struct{}
	slots    chan struct{}
	cancel   context.CancelFunc
	done     chan struct{}
	inflight sync.WaitGroup
	startMu  sync.Mutex
	started  bool
	schedule atomic.Pointer[[]time.Duration]
}

// NewDispatcher returns a dispatcher over store that delivers with sender. Call Start to run it.
func NewDispatcher(store Store, sender Sender, opts Options) *Dispatcher {
	if opts.Schedule == nil {
		opts.Schedule = DefaultSchedule
	}
	if opts.Workers <= 0 {
		opts.Workers = 16
	}
	if opts.Lease <= 0 {
		opts.Lease = time.Minute
	}
	if opts.Clock == nil {
		opts.Clock = SystemClock{}
	}
	log := opts.Logger
	if log == nil {
		log = zap.NewNop()
	}
	d := &Dispatcher{
		store: store, sender: sender, opts: opts, log: log,
		wake:  make(chan struct{}, 1),
		slots: make(chan struct{}, opts.Workers),
	}
	d.schedule.Store(&opts.Schedule)
	return d
}

// SetSchedule replaces the retry schedule; it applies to retries scheduled from now on.
func (d *Dispatcher) SetSchedule(s []time.Duration) {
	if len(s) == 0 {
		s = DefaultSchedule
	}
	d.schedule.Store(&s)
}

// Clock returns the dispatcher's clock.
func (d *Dispatcher) Clock() Clock { return d.opts.Clock }

// Update runs fn in a store transaction and, once it committed, wakes the dispatcher so that
// jobs fn enqueued are seen at once.
func (d *Dispatcher) Update(fn func(Tx) error) error {
	if err := d.store.Update(fn); err != nil {
		return err
	}
	d.Wake()
	return nil
}

// Wake makes the dispatcher look for due jobs now.
func (d *Dispatcher) Wake() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// Start reclaims jobs that a previous run leased but never finished (a crash), making them due
// now, and starts delivering in the background.
func (d *Dispatcher) Start() error {
	d.startMu.Lock()
	defer d.startMu.Unlock()
	if d.started {
		return errors.New("dispatcher already started")
	}
	now := d.opts.Clock.Now()
	err := d.store.Update(func(tx Tx) error {
		ids, err := tx.Leased()
		if err != nil {
			return err
		}
		for _, id := range ids {
			j, err := tx.Job(id)
			if err != nil {
				return fmt.Errorf("loading leased job %s: %w", id, err)
			}
			j.State, j.DueAt = StatePending, now
			if err := tx.PutJob(j); err != nil {
				return err
			}
		}
		if len(ids) > 0 {
			d.log.Info("reclaimed jobs leased before a restart", zap.Int("jobs", len(ids)))
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("reclaiming leased jobs: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	d.cancel, d.done, d.started = cancel, make(chan struct{}), true
	go d.run(ctx)
	return nil
}

// Stop stops leasing new jobs, cancels attempts under way and waits until they returned. A job
// whose attempt was cancelled stays leased and is retried at once by the next Start.
func (d *Dispatcher) Stop() {
	d.startMu.Lock()
	defer d.startMu.Unlock()
	if !d.started {
		return
	}
	d.cancel()
	<-d.done
	d.inflight.Wait()
	d.started = false
}

func (d *Dispatcher) run(ctx context.Context) {
	defer close(d.done)
	for {
		free := d.opts.Workers - len(d.slots)
		var jobs []*Job
		var err error
		if free > 0 {
			jobs, err = d.lease(free)
			if err != nil {
				if errors.Is(err, ErrClosed) {
					return
				}
				d.log.Error("leasing due jobs", zap.Error(err))
			}
		}
		for _, j := range jobs {
			d.slots <- struct{}{}
			d.inflight.Add(1)
			go d.attempt(ctx, j)
		}
		if len(jobs) > 0 && len(jobs) == free {
			continue // there may be more due jobs and free slots soon
		}
		var timer <-chan time.Time
		if err == nil && len(d.slots) < d.opts.Workers {
			var next time.Time
			var ok bool
			if verr := d.store.View(func(tx Tx) (e error) { next, ok, e = tx.NextDue(); return }); verr == nil && ok {
				timer = d.opts.Clock.After(next.Sub(d.opts.Clock.Now()))
			}
		} else if err != nil {
			timer = time.After(time.Second)
		}
		select {
		case <-ctx.Done():
			return
		case <-d.wake:
		case <-timer:
		}
	}
}

// lease claims up to n due jobs.
func (d *Dispatcher) lease(n int) ([]*Job, error) {
	var jobs []*Job
	err := d.store.Update(func(tx Tx) error {
		now := d.opts.Clock.Now()
		due, err := tx.Due(now, n)
		if err != nil {
			return err
		}
		jobs = due[:0]
		for _, j := range due {
			j.State, j.DueAt = StateLeased, now.Add(d.opts.Lease)
			if err := tx.PutJob(j); err != nil {
				return err
			}
			jobs = append(jobs, j)
		}
		return nil
	})
	return jobs, err
}

func (d *Dispatcher) attempt(ctx context.Context, j *Job) {
	defer d.inflight.Done()
	defer func() { <-d.slots; d.Wake() }()
	start := d.opts.Clock.Now()
	wall := time.Now()
	res := d.sender.Send(ctx, j)
	end := d.opts.Clock.Now()
	if ctx.Err() != nil && res.Err != nil {
		return // stopping: the job stays leased and is reclaimed by the next Start
	}
	a := Attempt{At: start, Duration: time.Since(wall), Status: res.Status, Body: res.Body}
	if res.Err != nil {
		a.Error = res.Err.Error()
	}
	var final *Job
	err := d.store.Update(func(tx Tx) error {
		cur, err := tx.Job(j.ID)
		if err != nil {
			return err
		}
		if cur.State != StateLeased {
			return nil // someone (an operator's replay) changed it meanwhile
		}
		cur.Attempts = append(cur.Attempts, a)
		n := len(cur.Attempts) - cur.LadderBase
		schedule := *d.schedule.Load()
		switch {
		case res.Err == nil:
			cur.State, cur.FinishedAt, cur.DueAt = StateDelivered, end, end
		case res.Permanent || n > len(schedule):
			cur.State, cur.FinishedAt, cur.DueAt = StateDead, end, end
		default:
			delay := schedule[n-1]
			if ra := min(res.RetryAfter, MaxRetryAfter); ra > delay {
				delay = ra
			}
			cur.State, cur.DueAt = StatePending, end.Add(delay) // the delay runs from the failure
		}
		final = cur
		return tx.PutJob(cur)
	})
	if err != nil {
		d.log.Error("storing the outcome of a delivery attempt", zap.String("job", j.ID), zap.Error(err))
		return
	}
	if final == nil {
		return
	}
	fields := []zap.Field{
		zap.Int64("fax_id", final.FaxID), zap.String("event_type", final.EventType),
		zap.String("url", RedactURL(final.URL)), zap.Int("attempt", len(final.Attempts)),
		zap.Int("status", res.Status), zap.String("state", final.State),
	}
	switch final.State {
	case StateDelivered:
		d.log.Info("webhook delivered", fields...)
	case StateDead:
		d.log.Error("webhook dead: no more retries", append(fields, zap.Error(res.Err))...)
	default:
		d.log.Warn("webhook attempt failed; retry scheduled", append(fields, zap.Error(res.Err), zap.Time("next_attempt", final.DueAt))...)
	}
	if d.opts.OnOutcome != nil {
		d.opts.OnOutcome(final, res)
	}
}
