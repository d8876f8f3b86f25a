package queue

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
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
	// Workers is how many deliveries may be under way at once. Default 16. The dispatcher holds
	// at most 2×Workers jobs in memory (those being attempted and as many leased ahead),
	// whatever the backlog; over a Shared store up to 16×Workers, as long as the payloads of
	// the jobs leased ahead stay within AheadBytes.
	Workers int
	// PerHost is how many attempts to one destination (see Destination: scheme, host and port
	// of the URL) may be under way at once. Default 4. The dispatcher leases at most as many
	// again of a destination's jobs ahead (over a Shared store up to 15 times as many, within
	// AheadBytes); further due jobs of a destination at its limit stay
	// pending, and jobs of other destinations are delivered meanwhile: a receiver that hangs or
	// fails holds at most PerHost of the Workers.
	PerHost int
	// Lease bounds an attempt: one still under way Lease after it began is cancelled and counts
	// as failed. It must outlive the sender's timeout (the app uses the HTTP timeout plus 30
	// seconds). Default 1 minute.
	Lease time.Duration
	// Clock tells the time; default SystemClock. Tests inject a FakeClock.
	Clock Clock
	// Logger receives one entry per attempt outcome; nil discards.
	Logger *zap.Logger
	// LogFields, if set, returns the fields that describe a job in the Logger's entries, e.g.
	// its metadata with the types the application logs them with elsewhere. Default: each
	// label of the job's Meta as a string field.
	LogFields func(job *Job) []zap.Field
	// OnOutcome, if set, is called after each attempt's outcome is stored, with the job as
	// stored but without its body (its Payload is empty: see Tx.JobHead).
	OnOutcome func(job *Job, res Result)
	// Prepare, if set, completes the payload of a job that needs it (Job.NeedsPrepare): a worker
	// calls it before the attempt, sends the payload it returns, and the run loop stores that
	// payload with the attempt's outcome, so that every later attempt sends the same bytes and
	// no worker writes to the store. The returned payload's Prepare is cleared. An error fails
	// the attempt (retried like any failure) and nothing is stored. Without Prepare, such a job
	// is sent as it is.
	Prepare func(ctx context.Context, job *Job) (Payload, error)
	// AheadBytes bounds, over a Shared store, the payloads (files and form fields) of the jobs
	// leased ahead of the workers beyond what the dispatcher leases over a store of its own
	// (2×PerHost per destination, running ones included): a job further ahead is leased only
	// while the payloads ahead leave room for one as large as the largest its destination had
	// lately. Webhooks with received faxes' PDFs are large (up to max_file_size); the others
	// are a few KiB. Default 32 MiB.
	AheadBytes int64
	// FleetScan is how often a dispatcher over a Shared store looks for due jobs even when no
	// wake-up came: jobs that other processes enqueued, or whose claim expired, while their
	// notification was lost. Default 2 seconds.
	FleetScan time.Duration
	// Instance names this process in its claim tokens (Job.Lease) over a Shared store, for the
	// operator who reads them; a random suffix keeps tokens unique across restarts. Default
	// the host name.
	Instance string
	// Health configures destination health: after Health.Failures consecutive failures a
	// destination is down and gets at most one probe attempt per Health.ProbeInterval, until
	// one succeeds. Zero values are the defaults; Health.Off gives Phaxio's plain ladder.
	Health Health
	// OnHealth, if set, is called from the run loop when a destination goes down or comes
	// back up, with its health then; it must not block.
	OnHealth func(h DestinationHealth)
}

// Dispatcher delivers due jobs: it leases them, hands them to the sender, and stores the outcome
// (delivered, the next retry, or dead). Exactly one dispatcher may run over a store, unless
// the store is Shared (see Fleet mode below).
//
// One loop does all of the dispatcher's writing: in a single transaction per round it stores
// the outcomes of the attempts that ended since the last round and leases due jobs for the
// workers that are, or will soon be, free; workers keep working on jobs leased ahead while a
// round commits. The store only reads and writes; which jobs a round takes is the dispatcher's
// policy (see lease). Leases live in memory: a leased job stays pending in the store, and rounds
// pass over it until its outcome is stored. A crash forgets the leases, which leaves those jobs
// due, and they are attempted at once after a restart; Stop leaves the jobs it did not finish
// pending, due, for the next Start.
// Rounds do not wait for the disk, even with sync_writes (Store.UpdateLazy): a power loss that
// undoes an outcome leaves the job due, and it is attempted again.
//
// Fleet mode: over a Shared store, one dispatcher runs in each process, and a round claims the
// jobs it leases in the store (ClaimDue): each gets a token of this dispatcher in Job.Lease and
// its DueAt moved to the end of the lease, so the other processes pass over it until then. An
// outcome is stored only if the job still holds the token of the claim it was attempted under;
// a process that died leaves its claims to expire, after which any process attempts those jobs
// again, and a late outcome of an expired claim that another process took over is dropped, not
// stored twice. Chains hold across processes, as the store keeps them. PerHost holds per
// process. Rounds also run on the store's wake-ups and every Options.FleetScan.
//
// Destination health (unless Options.Health.Off): the dispatcher counts, per destination, the
// consecutive attempts that failed as a receiver that is not there fails (CountsAsFailure). After
// Health.Failures of them the destination is down: its jobs keep their ladders, but a round
// leases at most one of them (the probe: the job due first, ahead of its due time when none is
// due, in which case a failure is not a step of its ladder) per Health.ProbeInterval, and only
// when none of them is under way; its other due jobs are
// deferred — not leased, not attempted, their attempt counts unchanged, and not made dead by
// their ladder, unless the ladder's time is over (from the job's creation or last replay, the
// sum of the schedule's delays): such a job dies unattempted, with ErrLadderOver in its attempt
// log. Jobs of a destination that goes down that were leased ahead are handed back. When an
// attempt to a down destination succeeds, it is up again, and the next rounds make its pending
// jobs due at once, each at its creation time, so that the backlog goes out oldest first, under
// PerHost, instead of at each job's next ladder step. Other destinations' turns are not touched:
// a down destination takes no room from them. Health lives in the dispatcher's memory: a restart
// starts with every destination up, and in a fleet each process judges health on its own.
type Dispatcher struct {
	store  Store
	sender Sender
	opts   Options
	log    *zap.Logger

	wake     chan struct{}
	cancel   context.CancelFunc
	done     chan struct{}
	inflight sync.WaitGroup // running workers
	startMu  sync.Mutex
	started  bool
	schedule atomic.Pointer[[]time.Duration]

	shared   Shared        // the store when it is Shared (fleet mode), else nil
	instance string        // the prefix of this dispatcher's claim tokens
	claims   atomic.Uint64 // claim tokens handed out

	leaseMu sync.Mutex
	leases  map[string]lease // jobs leased and not yet settled; written by the run loop only

	health *healthBook

	// lastTurn is the destination that got the last job of the last round that leased any:
	// the next round's turns start after it. Only lease touches it, and rounds never overlap.
	lastTurn string
}

// lease is a job the dispatcher holds in memory.
type lease struct {
	until time.Time // when an attempt of it is cancelled at the latest
	token string    // the claim's token in a Shared store (Job.Lease); empty otherwise
}

// Leases returns the IDs of the jobs leased now (handed to a sender, or about to be, and their
// outcome not stored yet), each with the time its lease ends. The store shows these jobs as
// pending: leases are held in memory.
func (d *Dispatcher) Leases() map[string]time.Time {
	d.leaseMu.Lock()
	defer d.leaseMu.Unlock()
	m := make(map[string]time.Time, len(d.leases))
	for id, l := range d.leases {
		m[id] = l.until
	}
	return m
}

// held returns a copy of the leases, for a round to pass over.
func (d *Dispatcher) held() map[string]lease {
	d.leaseMu.Lock()
	defer d.leaseMu.Unlock()
	return maps.Clone(d.leases)
}

// NewDispatcher returns a dispatcher over store that delivers with sender. Call Start to run it.
func NewDispatcher(store Store, sender Sender, opts Options) *Dispatcher {
	if opts.Schedule == nil {
		opts.Schedule = DefaultSchedule
	}
	if opts.Workers <= 0 {
		opts.Workers = 16
	}
	if opts.PerHost <= 0 {
		opts.PerHost = 4
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
	if opts.FleetScan <= 0 {
		opts.FleetScan = 2 * time.Second
	}
	if opts.AheadBytes <= 0 {
		opts.AheadBytes = DefaultAheadBytes
	}
	d := &Dispatcher{
		store: store, sender: sender, opts: opts, log: log,
		wake:   make(chan struct{}, 1),
		health: newHealthBook(opts.Health),
	}
	if sh, ok := store.(Shared); ok {
		d.shared = sh
		d.instance = instanceName(opts.Instance)
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

// Start starts delivering in the background. Jobs leased by an earlier run that ended without
// storing their outcome (a crash) are pending in the store and due: they are attempted at once.
func (d *Dispatcher) Start() error {
	d.startMu.Lock()
	defer d.startMu.Unlock()
	if d.started {
		return errors.New("dispatcher already started")
	}
	ctx, cancel := context.WithCancel(context.Background())
	d.cancel, d.done, d.started = cancel, make(chan struct{}), true
	d.leaseMu.Lock()
	d.leases = map[string]lease{}
	d.leaseMu.Unlock()
	l := &loop{
		work:       make(chan leased, d.opts.Workers),
		results:    make(chan outcome, d.opts.Workers),
		ahead:      map[string][]leased{},
		perDest:    map[string]int{},
		runPerDest: map[string]int{},
	}
	slots := make([]*attemptSlot, d.opts.Workers)
	for i := range slots {
		slots[i] = &attemptSlot{}
		d.inflight.Add(1)
		go d.worker(ctx, slots[i], l.work, l.results)
	}
	go d.watchLeases(ctx, slots)
	go d.run(ctx, l)
	return nil
}

// Stop stops leasing new jobs, cancels attempts under way, waits until they returned and stores
// the outcomes of the attempts that ended before. A job whose attempt was cancelled, or that was
// leased but not yet attempted, is handed back: it stays pending and is attempted at once by
// the next Start.
func (d *Dispatcher) Stop() {
	d.startMu.Lock()
	defer d.startMu.Unlock()
	if !d.started {
		return
	}
	d.cancel()
	<-d.done
	d.started = false
}

// leased is a job the dispatcher leased, with its destination.
type leased struct {
	job  *Job
	dest string
	// ahead is the due time of a probe of a down destination leased before it was due (see
	// Dispatcher: Destination health); zero otherwise.
	ahead time.Time
	// claimEnd is when the job's claim in a Shared store ends; zero for other stores.
	claimEnd time.Time
	// size is the job's payload size (payloadSize) over a Shared store, 0 otherwise, counted
	// in loop.aheadBytes while it waits ahead.
	size int64
}

// outcome is what a worker reports about one attempt; it holds no job body, but for one the
// attempt prepared.
type outcome struct {
	id, dest string
	token    string // the claim's token (Job.Lease) in a Shared store
	base     int    // attempts in the job's log when it was leased
	attempt  Attempt
	res      Result
	end      time.Time // the dispatcher clock's time when the attempt ended
	prepared *Payload  // the payload Options.Prepare made for this attempt, to store; nil if none
	ahead    time.Time // leased.ahead
}

// loop is the run loop's bookkeeping. Only the run goroutine touches it.
type loop struct {
	work    chan leased  // jobs handed to the workers
	results chan outcome // attempts that ended

	ahead      map[string][]leased // leased jobs not handed to a worker yet, per destination
	order      []string            // destinations with jobs ahead, in the order they are served
	aheadTotal int
	aheadBytes int64          // the payload sizes of the jobs ahead
	pace       paceBook       // how far ahead to lease, over a Shared store
	running    int            // jobs handed to the workers whose attempt has not ended
	perDest    map[string]int // per destination: jobs running and ahead
	runPerDest map[string]int // per destination: jobs running
	pending    []outcome      // ended attempts whose outcome is not stored yet
	batch      int            // most jobs one round may lease; shrinks while too big
	noSpace    bool           // the last round failed for lack of space (logged once)
}

// scanResult tells the run loop when to look for due jobs again.
type scanResult struct {
	// More is true when due jobs of destinations with room were left for want of capacity:
	// look again when there is capacity.
	More bool
	// Next is the earliest DueAt of the pending jobs not yet due (of the destinations the round
	// looked at), zero when there is none.
	Next time.Time
}

// roundResult is what a round reports back to the run loop.
type roundResult struct {
	stored []storedOutcome
	jobs   []leased
	scan   scanResult
	leased bool // the round looked for due jobs
	tooBig bool // the round was too big for one transaction and leased nothing
	err    error
	// unstored holds the outcomes not stored because of err, for the next round.
	unstored []outcome
	// settled holds the IDs of the jobs whose outcome was stored (or found moot): their leases end.
	settled []string
	// probes holds the down destinations a probe was leased to.
	probes []string
	// released holds the destinations back up whose pending jobs are all due now.
	released []string
}

// attemptSlot is a worker's attempt under way, as watchLeases sees it: the context the attempt
// runs under, which outlives the attempt unless cancelled, and when the attempt began (zero
// while the worker waits).
type attemptSlot struct {
	mu      sync.Mutex
	ctx     context.Context
	cancel  context.CancelCauseFunc
	started time.Time
}

// begin starts an attempt: it returns the context to run it under, a fresh one if the last was
// cancelled.
func (s *attemptSlot) begin(parent context.Context) context.Context {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ctx == nil || s.ctx.Err() != nil {
		s.ctx, s.cancel = context.WithCancelCause(parent)
	}
	s.started = time.Now()
	return s.ctx
}

// end marks the attempt over.
func (s *attemptSlot) end() {
	s.mu.Lock()
	s.started = time.Time{}
	s.mu.Unlock()
}

// watchLeases cancels, until ctx ends, the attempts that run longer than Options.Lease, with
// errLeaseEnded as the cause. One watcher for all workers costs less than a timer per attempt,
// and a lease is a safety bound (senders time out well before it), not a deadline to the
// millisecond: it checks every Lease/8, at most every second.
func (d *Dispatcher) watchLeases(ctx context.Context, slots []*attemptSlot) {
	every := max(min(d.opts.Lease/8, time.Second), time.Millisecond)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			for _, s := range slots {
				s.mu.Lock()
				if !s.started.IsZero() && now.Sub(s.started) >= d.opts.Lease {
					s.cancel(errLeaseEnded)
				}
				s.mu.Unlock()
			}
		}
	}
}

// worker attempts the jobs it is handed, one at a time, until ctx ends.
func (d *Dispatcher) worker(ctx context.Context, slot *attemptSlot, work <-chan leased, results chan<- outcome) {
	defer d.inflight.Done()
	for {
		select {
		case <-ctx.Done():
			return
		case l := <-work:
			o, ok := d.attempt(ctx, slot, l)
			if !ok {
				return // stopping: the job stays leased and is reclaimed by the next Start
			}
			results <- o // never blocks: results holds as many as can run
		}
	}
}

// roundDelay is how long a round may wait, while every worker is busy, for more outcomes to
// store and more room to lease: one transaction then serves more deliveries, and a round's
// fixed cost (a commit, a read per destination) is shared among them.
const roundDelay = time.Millisecond

// errLeaseEnded is the cause of an attempt's context when it outlived Options.Lease (see
// watchLeases).
var errLeaseEnded = errors.New("the attempt outlived the job's lease")

// attempt makes one delivery attempt of l. ok is false when the dispatcher is stopping and the
// attempt was abandoned.
func (d *Dispatcher) attempt(ctx context.Context, slot *attemptSlot, l leased) (outcome, bool) {
	start := d.opts.Clock.Now()
	wall := time.Now()
	actx := slot.begin(ctx)
	var prepared *Payload
	var res Result
	if d.opts.Prepare != nil && l.job.NeedsPrepare() {
		p, err := d.opts.Prepare(actx, l.job)
		if err != nil {
			res = Result{Err: err} // the attempt's error as the preparer worded it
		} else {
			p.Prepare = ""
			prepared, l.job.Payload = &p, p
		}
	}
	if res.Err == nil {
		res = d.sender.Send(actx, l.job)
	}
	slot.end()
	if ctx.Err() != nil && res.Err != nil {
		return outcome{}, false
	}
	a := Attempt{At: start, Duration: time.Since(wall), Status: res.Status, Body: res.Body}
	if res.Err != nil {
		a.Error = res.Err.Error()
	}
	return outcome{id: l.job.ID, dest: l.dest, token: l.job.Lease, base: len(l.job.Attempts), attempt: a, res: res, end: d.opts.Clock.Now(), prepared: prepared, ahead: l.ahead}, true
}

// run is the dispatcher's only writer. While one round (a transaction storing the outcomes that
// came in and leasing due jobs) runs in the background, it keeps handing leased jobs to workers
// as they free up, so that waiting for the disk does not idle them. While every worker is busy
// and jobs wait ahead, a round waits up to roundDelay for more outcomes to store and room to
// lease, so that one transaction serves several deliveries.
//
// On a Shared store, whose transactions wait for a server rather than for a lock of this
// process, a second round that only stores outcomes may run beside the first while outcomes
// pile up: the two transactions touch different jobs (an outcome's job stays leased, and
// skipped by the claims, until its round ends), and the server works on both at once.
func (d *Dispatcher) run(ctx context.Context, l *loop) {
	defer close(d.done)
	w := d.opts.Workers
	ahead := d.aheadFactor() * w // the most jobs leased but not finished: running, or waiting for a worker
	l.batch = ahead
	scan := true // look for due jobs in the next round
	var timer, retry, delay <-chan time.Time
	delayed := false              // delay ran out: the next round starts whatever its size
	var inflight chan roundResult // the round under way, nil if none
	var leaseStart time.Time      // when the round under way began, if it leases
	var storing chan roundResult  // the outcome-only round under way beside it (Shared stores), nil if none
	var wakeups <-chan struct{}   // the store's wake-ups in fleet mode
	var fleetScan *time.Ticker
	if d.shared != nil {
		wakeups = d.shared.Wakeups()
		fleetScan = time.NewTicker(d.opts.FleetScan)
		defer fleetScan.Stop()
	}
	var fleetTick <-chan time.Time
	if fleetScan != nil {
		fleetTick = fleetScan.C
	}
	start := func(outs []outcome, ask leaseAsk) chan roundResult {
		ch := make(chan roundResult, 1)
		go func() { ch <- d.round(outs, ask) }()
		return ch
	}
	// ended handles the result of a round; it reports whether the dispatcher stops.
	ended := func(res roundResult) bool {
		if res.err == nil {
			d.bookHealth(&res)
		}
		d.settle(res)
		d.finish(res.stored)
		if len(res.stored) > 0 {
			scan = true // outcomes may have made retries or chain successors due: see storeAndLease
		}
		switch {
		case errors.Is(res.err, ErrClosed):
			return true
		case res.err != nil:
			switch {
			case !errors.Is(res.err, ErrNoSpace):
				d.log.Error("storing attempt outcomes and leasing due jobs", zap.Error(res.err))
			case !l.noSpace: // the store logs the shortage; say once what it means here
				l.noSpace = true
				d.log.Warn("storage short of space: outcomes of attempts wait in memory, and no job is leased, until it has space again",
					zap.Int("outcomes_waiting", len(res.unstored)+len(l.pending)), zap.Error(res.err))
			}
			l.pending = append(res.unstored, l.pending...)
			retry, scan = time.After(time.Second), true
		case l.noSpace:
			l.noSpace, scan = false, true
			d.log.Info("storage has space again: outcomes stored, leasing resumed")
		}
		switch {
		case res.err != nil:
		case res.tooBig:
			l.batch, scan = max(1, l.batch/2), true
		case res.leased:
			if len(res.jobs) == l.batch {
				l.batch = min(ahead, l.batch*2)
			}
			for i := range res.jobs {
				if d.shared != nil { // only AheadBytes, over a Shared store, reads the size
					res.jobs[i].size = payloadSize(res.jobs[i].job)
				}
				d.enqueueAhead(l, res.jobs[i])
			}
			if d.shared != nil {
				l.pace.leased(res.jobs)
			}
			scan = scan || res.scan.More
			timer = nil
			if !res.scan.Next.IsZero() {
				timer = d.opts.Clock.After(res.scan.Next.Sub(d.opts.Clock.Now()))
				// A clock that moved on between reading it and setting the timer (a virtual
				// clock advanced by a test) has set the timer too late: look now instead.
				if !d.opts.Clock.Now().Before(res.scan.Next) {
					scan = true
				}
			}
		}
		return false
	}
	for {
		if inflight == nil && retry == nil {
			want := 0
			if scan {
				want = min(ahead-l.running-l.aheadTotal, l.batch)
			}
			small := l.running >= w && len(l.pending) < w/2 && want < w/2
			switch {
			case len(l.pending) == 0 && want <= 0:
			case small && !delayed:
				if delay == nil {
					delay = time.After(roundDelay)
				}
			default:
				delay, delayed = nil, false
				outs := l.pending
				l.pending = nil
				counts := make(map[string]int, len(l.perDest))
				for k, v := range l.perDest {
					counts[k] = v
				}
				inflight = start(outs, d.leaseAsk(l, want, counts))
				leaseStart = time.Now()
				if want > 0 {
					scan = false
				}
			}
		}
		if d.shared != nil && inflight != nil && storing == nil && retry == nil && len(l.pending) >= max(1, w/2) {
			outs := l.pending
			l.pending = nil
			storing = start(outs, leaseAsk{})
		}
		select {
		case <-delay:
			delay, delayed = nil, true
		case <-ctx.Done():
			d.stop(l, inflight, storing)
			return
		case o := <-l.results:
			d.ended(l, o)
			scan = true
		case res := <-inflight:
			inflight = nil
			if d.shared != nil && res.leased && res.err == nil {
				l.pace.roundTook(time.Since(leaseStart))
			}
			if ended(res) {
				d.stop(l, nil, storing)
				return
			}
		case res := <-storing:
			storing = nil
			if ended(res) {
				d.stop(l, inflight, nil)
				return
			}
		case <-d.wake:
			scan = true
		case <-wakeups:
			scan = true
		case <-fleetTick:
			scan = true
		case <-timer:
			timer, scan = nil, true
		case <-retry:
			retry = nil
		}
		d.handOut(l)
	}
}

// plainAhead is aheadFactor over a store of one process: a round there takes a fraction of a
// millisecond, and PerHost jobs leased ahead of the PerHost running keep a destination's
// workers busy across it.
const plainAhead = 2

// sharedAhead is aheadFactor over a Shared store: the most a destination whose attempts are
// quick next to a round gets (see paceBook). A round there waits for a server and its commit
// (milliseconds, where Badger's takes a fraction of one, and now and then ten or more on a busy
// machine), and a round can only claim what the previous ones left room for: with 2×PerHost per
// destination, PerHost jobs run while as many wait, and a worker whose job ends during a round
// idles until the next one; its jobs ahead must outlast the slowest rounds. qbench's case (e)
// on a 2-core machine, 10,000 jobs, 16 workers, 4 per host: 8,600–9,900 deliveries/s with 6,
// 8,900–10,800 with 10, 10,600–11,900 with 16, 10,200–12,500 with 24 (with 2, 5,500–6,000 on
// 3,000-job runs of an earlier version); workers idle for want of a job ahead 24–32% of their
// time with 6, 15–20% with 12. A job that
// waits ahead too long is handed back (see handOut); AheadBytes bounds what the jobs ahead hold
// in memory.
const sharedAhead = 16

// DefaultAheadBytes is the default of Options.AheadBytes.
const DefaultAheadBytes = 32 << 20

// aheadFactor is how many times Workers (in all) and PerHost (per destination) jobs may be
// leased and unfinished at once, at most.
func (d *Dispatcher) aheadFactor() int {
	if d.shared != nil {
		return sharedAhead
	}
	return plainAhead
}

// leaseAsk is what a round is to lease: up to want jobs, given counts (per destination, the jobs
// running or ahead) and held (the jobs leased already, passed over). A destination has room for
// plainAhead×PerHost jobs running or ahead, or up to its reach (paceBook.reaches) over a Shared
// store, where each job beyond plainAhead×PerHost takes its destination's size from bytes and
// is leased only while bytes has room for it. The zero leaseAsk leases nothing.
type leaseAsk struct {
	want    int
	counts  map[string]int
	held    map[string]lease
	bytes   int64
	reaches map[string]reach
}

// leaseAsk returns the ask of a round that leases up to want jobs, given counts.
func (d *Dispatcher) leaseAsk(l *loop, want int, counts map[string]int) leaseAsk {
	ask := leaseAsk{want: want, counts: counts, held: d.held()}
	if want > 0 && d.shared != nil {
		ask.bytes, ask.reaches = d.opts.AheadBytes-l.aheadBytes, l.pace.reaches(d.opts.PerHost)
	}
	return ask
}

// payloadSize is what a job's payload holds in memory, roughly: its files' and fields' bytes.
func payloadSize(j *Job) int64 {
	n := int64(len(j.Prepare))
	for _, f := range j.Fields {
		n += int64(len(f.Name) + len(f.Value))
	}
	for _, f := range j.Files {
		n += int64(len(f.Data))
	}
	if j.Mail != nil {
		n += int64(len(j.Mail.HTML))
	}
	return n
}

// enqueueAhead queues a leased job for a worker.
func (d *Dispatcher) enqueueAhead(l *loop, j leased) {
	if len(l.ahead[j.dest]) == 0 {
		l.order = append(l.order, j.dest)
	}
	l.ahead[j.dest] = append(l.ahead[j.dest], j)
	l.aheadTotal++
	l.aheadBytes += j.size
	l.perDest[j.dest]++
}

// handOut gives workers the jobs ahead whose destinations have fewer than PerHost attempts
// under way, serving destinations in turn.
//
// Over a Shared store, a job's claim ends Lease after it was claimed, and another process may
// claim it then: a job that waited ahead so long that less than Lease-maxAheadWait of its claim
// is left is not started (its attempt could outlast the claim, and the job be attempted twice);
// the jobs of its destination that wait ahead are handed back instead, due at once, and a later
// round claims them anew.
func (d *Dispatcher) handOut(l *loop) {
	var now time.Time
	for i := 0; i < len(l.order) && l.running < d.opts.Workers; {
		dest := l.order[i]
		q := l.ahead[dest]
		if l.runPerDest[dest] >= d.opts.PerHost {
			i++
			continue
		}
		if !q[0].claimEnd.IsZero() {
			if now.IsZero() {
				now = d.opts.Clock.Now()
			}
			if q[0].claimEnd.Sub(now) < d.opts.Lease-maxAheadWait(d.opts.Lease) {
				d.handBack(l, dest) // takes dest out of l.order: i is the next one now
				continue
			}
		}
		l.work <- q[0] // never blocks: work holds as many as can run
		l.aheadBytes -= q[0].size
		q[0] = leased{}
		l.running++
		l.runPerDest[dest]++
		l.aheadTotal--
		if q = q[1:]; len(q) == 0 {
			delete(l.ahead, dest)
			l.order = append(l.order[:i], l.order[i+1:]...)
			continue
		}
		l.ahead[dest] = q
		// Next turn goes to the next destination.
		l.order = append(append(l.order[:i], l.order[i+1:]...), dest)
	}
}

// ended books an attempt that ended: its worker and its destination have room again, its
// outcome waits for the next round.
func (d *Dispatcher) ended(l *loop, o outcome) {
	l.running--
	if l.runPerDest[o.dest]--; l.runPerDest[o.dest] <= 0 {
		delete(l.runPerDest, o.dest)
	}
	if l.perDest[o.dest]--; l.perDest[o.dest] <= 0 {
		delete(l.perDest, o.dest)
	}
	l.pending = append(l.pending, o)
	if d.shared != nil {
		l.pace.attempted(o.dest, o.attempt.Duration)
	}
	if ch, ok := d.health.note(o.dest, o.res, o.end); ok {
		if ch.down {
			d.handBack(l, ch.dest)
		}
		if d.opts.OnHealth != nil {
			d.opts.OnHealth(ch.h)
		}
	}
}

// bookHealth books what a round did for destination health: the probes it leased (the next
// ones wait ProbeInterval) and the destinations whose jobs it made due. Jobs it leased for a
// destination that went down meanwhile, but for a probe, are left out: they stay pending.
func (d *Dispatcher) bookHealth(res *roundResult) {
	now := d.opts.Clock.Now()
	for _, dest := range res.probes {
		d.health.probed(dest, now)
	}
	for _, dest := range res.released {
		d.health.released(dest)
	}
	if len(res.jobs) == 0 {
		return
	}
	kept := res.jobs[:0]
	probe := map[string]bool{}
	for _, dest := range res.probes {
		probe[dest] = true
	}
	var back map[string]lease
	for _, j := range res.jobs {
		if !probe[j.dest] && d.health.isDown(j.dest) {
			if back == nil {
				back = map[string]lease{}
			}
			back[j.job.ID] = lease{token: j.job.Lease}
			continue
		}
		kept = append(kept, j)
	}
	res.jobs = kept
	if len(back) > 0 && d.shared != nil {
		d.release(back)
	}
}

// maxAheadWait is how long a job claimed in a Shared store may wait ahead for a worker: a
// quarter of the lease, at most 10 seconds, so that an attempt started within it ends before
// the claim does when the sender's timeout leaves the lease 10 seconds or more (the app's
// leases are its HTTP timeout plus 30 seconds).
func maxAheadWait(lease time.Duration) time.Duration { return min(lease/4, 10*time.Second) }

// handBack hands back the jobs of dest (which went down, or whose claims grew old waiting) that
// wait ahead for a worker: they stay pending, and due, in the store.
func (d *Dispatcher) handBack(l *loop, dest string) {
	q := l.ahead[dest]
	if len(q) == 0 {
		return
	}
	delete(l.ahead, dest)
	if i := slices.Index(l.order, dest); i >= 0 {
		l.order = slices.Delete(l.order, i, i+1)
	}
	l.aheadTotal -= len(q)
	for _, j := range q {
		l.aheadBytes -= j.size
	}
	if l.perDest[dest] -= len(q); l.perDest[dest] <= 0 {
		delete(l.perDest, dest)
	}
	back := make(map[string]lease, len(q))
	d.leaseMu.Lock()
	for _, j := range q {
		back[j.job.ID] = d.leases[j.job.ID]
		delete(d.leases, j.job.ID)
	}
	d.leaseMu.Unlock()
	if d.shared != nil {
		d.release(back)
	}
}

// stop waits for the rounds under way and the workers (the context has been cancelled), then
// stores the outcomes of the attempts that ended.
func (d *Dispatcher) stop(l *loop, rounds ...chan roundResult) {
	d.cancel()
	for _, r := range rounds {
		if r == nil {
			continue
		}
		res := <-r
		d.settle(res)
		d.finish(res.stored)
		l.pending = append(l.pending, res.unstored...)
	}
	d.inflight.Wait()
	for drained := false; !drained; {
		select {
		case o := <-l.results:
			d.ended(l, o)
		default:
			drained = true
		}
	}
	if len(l.pending) > 0 {
		res := d.round(l.pending, leaseAsk{})
		d.settle(res)
		d.finish(res.stored)
		if res.err != nil && !errors.Is(res.err, ErrClosed) {
			d.log.Error("storing attempt outcomes at stop", zap.Error(res.err))
		}
	}
	d.leaseMu.Lock()
	unsettled := d.leases
	d.leases = map[string]lease{} // the jobs not settled stay pending in the store, due
	d.leaseMu.Unlock()
	if d.shared != nil && len(unsettled) > 0 {
		d.release(unsettled)
	}
}

// release hands claims of a Shared store back at Stop: the jobs this dispatcher claimed and
// did not finish are due at once for the other processes, instead of when their claims expire.
// A claim another process took over meanwhile is left alone.
func (d *Dispatcher) release(claims map[string]lease) {
	now := d.opts.Clock.Now()
	err := d.store.UpdateLazy(func(tx Tx) error {
		for id, l := range claims {
			j, err := tx.JobHead(id)
			if errors.Is(err, ErrNotFound) {
				continue
			}
			if err != nil {
				return fmt.Errorf("loading claimed job %s: %w", id, err)
			}
			if j.State != StatePending || j.Lease != l.token {
				continue
			}
			j.Lease, j.DueAt = "", now
			if err := tx.PutJobHead(j); err != nil {
				return fmt.Errorf("releasing claimed job %s: %w", id, err)
			}
		}
		return nil
	})
	if err != nil && !errors.Is(err, ErrClosed) {
		d.log.Warn("handing back claimed jobs at stop; they are attempted again once their claims expire", zap.Int("jobs", len(claims)), zap.Error(err))
	}
}

// settle ends the leases of the jobs a round settled and records the ones it took.
func (d *Dispatcher) settle(res roundResult) {
	if len(res.settled) == 0 && len(res.jobs) == 0 {
		return
	}
	d.leaseMu.Lock()
	defer d.leaseMu.Unlock()
	for _, id := range res.settled {
		delete(d.leases, id)
	}
	for _, j := range res.jobs {
		d.leases[j.job.ID] = lease{until: j.job.DueAt, token: j.job.Lease}
	}
}

// round stores outs and leases up to want due jobs, given how many jobs per destination are
// running or ahead, in one transaction if they fit; otherwise it stores the outcomes one by one
// and leases nothing, reporting tooBig.
func (d *Dispatcher) round(outs []outcome, ask leaseAsk) roundResult {
	res := d.storeAndLease(outs, ask)
	if !errors.Is(res.err, ErrTooBig) {
		if res.err == nil {
			res.settled = ids(outs)
		}
		return res
	}
	res = roundResult{tooBig: true}
	for i, o := range outs {
		r := d.storeAndLease([]outcome{o}, leaseAsk{})
		res.stored = append(res.stored, r.stored...)
		if r.err != nil {
			res.err, res.unstored = r.err, outs[i:]
			return res
		}
		res.settled = append(res.settled, o.id)
	}
	return res
}

// ids returns the job IDs of outs.
func ids(outs []outcome) []string {
	s := make([]string, len(outs))
	for i, o := range outs {
		s[i] = o.id
	}
	return s
}

// storedOutcome is an outcome as stored, for OnOutcome and the log.
type storedOutcome struct {
	job *Job
	res Result
}

// storeAndLease runs one transaction: it leases up to want due jobs whose destinations have
// room (fewer than aheadFactor×PerHost jobs running or ahead, counts included), then stores outs. Jobs in
// held, those of outs included, are leased already.
func (d *Dispatcher) storeAndLease(outs []outcome, ask leaseAsk) roundResult {
	var res roundResult
	res.err = d.store.UpdateLazy(func(tx Tx) error {
		res = roundResult{leased: ask.want > 0}
		// Lease first: a Badger iterator sorts the transaction's writes so far, so scanning
		// before storing the outcomes costs less. The scan passes over the jobs of outs (held)
		// and does not see the retries and chain successors their outcomes make due; the run
		// loop scans again after a round that stored outcomes.
		// A store that pays a round trip per read reads the outcomes' jobs with the lease's
		// first read.
		if p, ok := tx.(Prefetcher); ok && len(outs) > 1 {
			if err := p.Prefetch(ids(outs)); err != nil {
				return err
			}
		}
		if err := d.lease(tx, &res, ask); err != nil {
			return err
		}
		for _, o := range outs {
			j, err := d.storeOutcome(tx, o)
			if err != nil {
				return err
			}
			if j != nil {
				res.stored = append(res.stored, storedOutcome{job: j, res: o.res})
			}
		}
		return nil
	})
	if res.err != nil {
		res.stored, res.jobs, res.unstored = nil, nil, outs
	}
	return res
}

// lease takes up to want due jobs for the workers and loads them into res.jobs, leased in
// memory. Destinations take turns: each with due jobs and room (fewer than aheadFactor×PerHost
// jobs running or ahead, counts included) gets one job per turn, in destination order starting
// after the destination served last, until want is reached or no destination has room or due
// jobs left; within a destination, jobs go in due order. A destination that hangs thus holds at
// most aheadFactor×PerHost jobs (2×, or up to 16× over a Shared store) and never more than its turn,
// and its backlog stays in its own due index, which no other destination's turn reads. Jobs in
// held, those of outs included, are leased already and passed over.
func (d *Dispatcher) lease(tx Tx, res *roundResult, ask leaseAsk) error {
	want, counts, held := ask.want, ask.counts, ask.held
	if want <= 0 {
		return nil
	}
	now := d.opts.Clock.Now()
	// Destinations back up: their pending jobs are made due first, so that this round's scan
	// sees them.
	for _, dest := range d.health.releasing() {
		done, err := d.releaseDest(tx, dest, now, held)
		if err != nil {
			return err
		}
		if done {
			res.released = append(res.released, dest)
		} else {
			res.scan.More = true
		}
	}
	var turns []turn
	var down []string               // down destinations due for a probe
	var early map[string]bool       // those of them none of whose jobs is due
	var downAt map[string]time.Time // down destinations: when their next probe may go out
	downs := d.health.down()
	if len(downs) > 0 {
		early, downAt = map[string]bool{}, make(map[string]time.Time, len(downs))
		for _, dn := range downs {
			downAt[dn.dest] = dn.nextProbe
		}
	}
	next, err := tx.Destinations(now, func(dest string, _ time.Time) bool {
		plain := plainAhead*d.opts.PerHost - counts[dest]
		room := plain
		if r, ok := ask.reaches[dest]; ok {
			room = r.jobs - counts[dest]
		}
		if nextProbe, ok := downAt[dest]; ok {
			delete(downAt, dest) // seen: it has due jobs
			switch {
			case counts[dest] > 0: // its probe is under way; its outcome makes a round look again
				return true
			case nextProbe.After(now):
				res.scan.noteNext(nextProbe)
				return true
			}
			down = append(down, dest)
			room = 1
		}
		if room > 0 {
			turns = append(turns, turn{dest: dest, room: room, plain: min(room, plain)})
		}
		return true
	})
	if err != nil {
		return err
	}
	if !next.IsZero() {
		res.scan.noteNext(next)
	}
	// A down destination none of whose jobs is due gets its probe all the same, ahead of the
	// job due first, so that a receiver that is back is found back within a probe interval
	// rather than at the next ladder step.
	for _, dn := range downs {
		nextProbe, ok := downAt[dn.dest]
		switch {
		case !ok || counts[dn.dest] > 0:
		case nextProbe.After(now):
			res.scan.noteNext(nextProbe)
		default:
			down = append(down, dn.dest)
			early[dn.dest] = true
			turns = append(turns, turn{dest: dn.dest, room: 1, plain: 1})
		}
	}
	var skip map[string]bool // jobs of down destinations that died unattempted
	if len(down) > 0 {
		skip = map[string]bool{}
		for _, dest := range down {
			if err := d.sweepExpired(tx, res, dest, now, held, skip); err != nil {
				return err
			}
		}
	}
	slices.SortFunc(turns, func(a, b turn) int { return strings.Compare(a.dest, b.dest) })
	first, _ := slices.BinarySearchFunc(turns, d.lastTurn, func(t turn, last string) int {
		if t.dest <= last {
			return -1
		}
		return 1
	})
	if first == len(turns) {
		first = 0
	}
	turns = append(turns[first:], turns[:first]...)
	// Share want out, one job per destination per turn. A destination whose due jobs are fewer
	// than its share leaves the rest unused this round; the run loop looks again at once when
	// a round leased less than it could and more was due (scan.More).
	// Beyond its plain room, a destination's job takes its size from ask.bytes.
	quota := make([]int, len(turns))
	bytes := ask.bytes
	for left, given := want, true; left > 0 && given; {
		given = false
		for i, t := range turns {
			if left == 0 || quota[i] >= t.room {
				continue
			}
			if quota[i] >= t.plain {
				size := ask.reaches[t.dest].size // room > plain: it has a reach
				if size > bytes {
					continue
				}
				bytes -= size
			}
			quota[i]++
			left--
			given = true
		}
	}
	if d.shared != nil {
		return d.claim(tx, res, now, turns, quota, held, skip, down, early)
	}
	var picked []leased
	for i, t := range turns {
		n := 0
		err := tx.PendingJobs(t.dest, func(id string, dueAt time.Time) bool {
			if _, ok := held[id]; ok || skip[id] {
				return true
			}
			if dueAt.After(now) {
				if early[t.dest] && n < quota[i] {
					picked = append(picked, leased{job: &Job{ID: id}, dest: t.dest, ahead: dueAt})
					res.probes = append(res.probes, t.dest)
					d.lastTurn = t.dest
					return false
				}
				res.scan.noteNext(dueAt)
				return false
			}
			if n == quota[i] {
				res.scan.More = true // more due here than this round takes
				return false
			}
			picked = append(picked, leased{job: &Job{ID: id}, dest: t.dest})
			if slices.Contains(down, t.dest) {
				res.probes = append(res.probes, t.dest)
			}
			d.lastTurn = t.dest
			n++
			return true
		})
		if err != nil {
			return fmt.Errorf("listing the due jobs of %s: %w", RedactURL(t.dest), err)
		}
	}
	for _, p := range picked {
		j, err := tx.Job(p.job.ID)
		if err != nil {
			return fmt.Errorf("loading due job %s: %w", p.job.ID, err)
		}
		if j.State != StatePending {
			continue // not expected: the index follows the job's state
		}
		// Leased in memory only: the store keeps the job pending and due.
		j.State, j.DueAt = StateLeased, now.Add(d.opts.Lease)
		res.jobs = append(res.jobs, leased{job: j, dest: p.dest, ahead: p.ahead})
	}
	if res.scan.More {
		res.scan.Next = time.Time{}
	}
	return nil
}

// turn is one destination's turn in a round: how many more of its jobs may be running or
// ahead.
type turn struct {
	dest string
	room int
	// plain is the part of room within plainAhead×PerHost, which AheadBytes does not bound.
	plain int
}

// noteNext keeps the earliest due time of a job not due yet.
func (s *scanResult) noteNext(at time.Time) {
	if s.Next.IsZero() || at.Before(s.Next) {
		s.Next = at
	}
}

// claim is lease over a Shared store: each destination's turn claims its quota of due jobs in
// the store (ClaimDue), passing over the jobs this dispatcher holds and those other processes
// claim at the same moment.
func (d *Dispatcher) claim(tx Tx, res *roundResult, now time.Time, turns []turn, quota []int, held map[string]lease, dead map[string]bool, down []string, early map[string]bool) error {
	var skip map[string]bool
	if len(held) > 0 || len(dead) > 0 {
		skip = make(map[string]bool, len(held)+len(dead))
		for id := range held {
			skip[id] = true
		}
		for id := range dead {
			skip[id] = true
		}
	}
	// A probe ahead of its job's due time: the job is made due now, so that the claim takes it.
	ahead := map[string]time.Time{}
	for i, t := range turns {
		if quota[i] > 0 && early[t.dest] {
			id, due, err := d.pullAhead(tx, t.dest, now, skip)
			if err != nil {
				return err
			}
			if id != "" {
				ahead[id] = due
			}
		}
	}
	until := now.Add(d.opts.Lease)
	var claims []Claim
	var dests []string
	for i, t := range turns {
		if quota[i] == 0 {
			continue
		}
		token := d.instance + "/" + strconv.FormatUint(d.claims.Add(1), 36)
		claims = append(claims, Claim{Dest: t.dest, Limit: quota[i], Token: token})
		dests = append(dests, t.dest)
	}
	if len(claims) == 0 {
		return nil
	}
	got, err := ClaimDue(tx, claims, now, skip, until)
	if err != nil {
		return fmt.Errorf("claiming due jobs: %w", err)
	}
	for i, jobs := range got {
		if len(jobs) == claims[i].Limit {
			res.scan.More = true // there may be more due here than this round takes
		}
		if len(jobs) > 0 && slices.Contains(down, dests[i]) {
			res.probes = append(res.probes, dests[i])
		}
		for _, j := range jobs {
			j.State = StateLeased
			res.jobs = append(res.jobs, leased{job: j, dest: dests[i], ahead: ahead[j.ID], claimEnd: until})
			d.lastTurn = dests[i]
		}
	}
	if res.scan.More {
		res.scan.Next = time.Time{}
	}
	return nil
}

// instanceName returns the prefix of a dispatcher's claim tokens: name (or the host name) and
// a random suffix, so that a restarted process never takes an old claim for its own.
func instanceName(name string) string {
	if name == "" {
		name, _ = os.Hostname()
	}
	var b [6]byte
	rand.Read(b[:])
	return name + "-" + hex.EncodeToString(b[:])
}

// storeOutcome records one attempt in its job: delivered, dead, or pending for the next retry,
// and the payload the attempt prepared, if any. It returns nil, changing nothing, when the job
// is no longer the one leased: not pending, or with other attempts in its log (changed
// meanwhile; not expected, as operators cannot change a due job).
func (d *Dispatcher) storeOutcome(tx Tx, o outcome) (*Job, error) {
	cur, err := tx.JobHead(o.id)
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("loading job %s to store its attempt: %w", o.id, err)
	}
	if cur.State != StatePending || len(cur.Attempts) != o.base || cur.Lease != o.token {
		// Changed meanwhile; over a Shared store, the claim expired and another process
		// took the job over: its attempt's outcome is the one to store.
		if o.token != "" && cur.Lease != o.token {
			d.log.Warn("attempt outcome dropped: the job's claim expired and another instance took it over",
				zap.String("job", o.id), zap.String("url", RedactURL(cur.URL)))
		}
		return nil, nil
	}
	cur.Lease = ""
	cur.Attempts = append(cur.Attempts, o.attempt)
	n := len(cur.Attempts) - cur.LadderBase
	if !o.ahead.IsZero() {
		// A probe made before the job was due is not a step of its ladder: a failure leaves the
		// job due when it was, its ladder where it was (see the case below).
		n--
	}
	schedule := *d.schedule.Load()
	end := o.end
	switch {
	case o.res.Err == nil:
		cur.State, cur.FinishedAt, cur.DueAt = StateDelivered, end, end
	case o.res.Permanent || n > len(schedule):
		cur.State, cur.FinishedAt, cur.DueAt = StateDead, end, end
	case d.health.isDown(o.dest) && !end.Before(ladderEnd(cur, schedule)):
		// A probe of a down destination whose ladder's time is over: no job outlives its
		// ladder, however few of its attempts were made.
		cur.State, cur.FinishedAt, cur.DueAt = StateDead, end, end
	case !o.ahead.IsZero():
		cur.LadderBase++ // the ladder counts from after this attempt
		cur.State, cur.DueAt = StatePending, o.ahead
	default:
		delay := schedule[n-1]
		if ra := min(o.res.RetryAfter, MaxRetryAfter); ra > delay {
			delay = ra
		}
		cur.State, cur.DueAt = StatePending, end.Add(delay) // the delay runs from the failure
	}
	if o.prepared != nil {
		cur.Payload = *o.prepared
		err = tx.PutJob(cur)
		cur.Payload = Payload{} // OnOutcome gets the head only
	} else {
		err = tx.PutJobHead(cur)
	}
	if err != nil {
		return nil, fmt.Errorf("storing the attempt of job %s: %w", o.id, err)
	}
	return cur, nil
}

// finish logs stored outcomes and reports them to OnOutcome.
func (d *Dispatcher) finish(stored []storedOutcome) {
	for _, s := range stored {
		final, res := s.job, s.res
		var fields []zap.Field
		if d.opts.LogFields != nil {
			fields = d.opts.LogFields(final)
		} else {
			for _, m := range final.Meta {
				fields = append(fields, zap.String(m.Name, m.Value))
			}
		}
		fields = append(fields,
			zap.String("url", RedactURL(final.URL)), zap.Int("attempt", len(final.Attempts)),
			zap.Int("status", res.Status), zap.String("state", final.State),
		)
		switch final.State {
		case StateDelivered:
			d.log.Info("webhook delivered", fields...)
		case StateDead:
			d.log.Error("webhook dead: "+DeadReason(res), append(fields, zap.Error(res.Err))...)
		default:
			d.log.Warn("webhook attempt failed; retry scheduled", append(fields, zap.Error(res.Err), zap.Time("next_attempt", final.DueAt))...)
		}
		if d.opts.OnOutcome != nil {
			d.opts.OnOutcome(final, res)
		}
	}
}
