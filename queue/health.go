package queue

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
)

// Health configures destination health (see Dispatcher: Destination health).
type Health struct {
	// Off turns destination health off: every job follows Phaxio's plain ladder, whatever
	// its destination's other jobs do.
	Off bool
	// Failures is how many consecutive failed attempts (see CountsAsFailure) make a
	// destination down. Default DefaultHealthFailures.
	Failures int
	// ProbeInterval is the least time between two attempts to a destination that is down.
	// Default DefaultProbeInterval.
	ProbeInterval time.Duration
}

// Defaults of Health.
const (
	// DefaultHealthFailures is Health.Failures' default: five consecutive failures are more
	// than a restart or a deploy of a receiver makes, as its jobs' first retries are minutes
	// apart.
	DefaultHealthFailures = 5
	// DefaultProbeInterval is Health.ProbeInterval's default: a receiver that is back gets its
	// backlog within half a minute, far sooner than the ladder's first step (5 minutes), while
	// a dead one gets at most 120 requests an hour from this process, however large its backlog.
	DefaultProbeInterval = 30 * time.Second
)

// ErrLadderOver is the error (wrapped) of a job that died unattempted because its destination
// was down when its retry ladder's time ran out (see Dispatcher: Destination health).
var ErrLadderOver = errors.New("not attempted: the destination is down and the job's retry ladder's time is over")

// Destination health states, as DestinationHealth.State shows them.
const (
	HealthUp   = "up"
	HealthDown = "down"
)

// DestinationHealth is what a dispatcher knows of one destination's health.
type DestinationHealth struct {
	// Destination is the destination (see Destination), credentials redacted.
	Destination string `json:"destination"`
	// State is HealthUp or HealthDown.
	State string `json:"state"`
	// Failures counts the consecutive failed attempts to the destination.
	Failures int `json:"consecutive_failures"`
	// Since is when the destination went down (down), or when its current run of failures
	// began (up).
	Since time.Time `json:"since"`
	// NextProbe is when the next probe attempt may go out to a destination that is down; zero
	// when it is up.
	NextProbe time.Time `json:"next_probe,omitempty"`
}

// CountsAsFailure reports whether an attempt with the Result res counts toward making its
// destination down: a failure that says the receiver is not answering as it should — no
// answer at all (connection refused, TLS error, timeout), a 5xx or a 429. A success and an
// answer that says the request itself is wrong (3xx, any other 4xx) show that the receiver is
// there, and reset the count; a permanent failure (a URL that can never work, a destination
// the SSRF guard refuses) says nothing about the receiver and leaves the count as it is.
func CountsAsFailure(res Result) bool {
	return res.Err != nil && !res.Permanent && (res.Status == 0 || res.Status == 429 || res.Status >= 500)
}

// destHealth is one destination's health, as the health book keeps it.
type destHealth struct {
	failures  int
	down      bool
	since     time.Time
	nextProbe time.Time // down: when the next probe may be leased
	release   bool      // came back up: its pending jobs are still to be made due
}

// healthBook holds the health of the destinations that failed lately: the run loop writes it,
// rounds (lease) and the admin API read it.
type healthBook struct {
	mu   sync.Mutex
	opts Health
	m    map[string]*destHealth
}

func newHealthBook(h Health) *healthBook {
	b := &healthBook{m: map[string]*destHealth{}}
	b.set(h)
	return b
}

// set applies the options h (zero values are the defaults). Turning health off forgets every
// destination's health: they are all up.
func (b *healthBook) set(h Health) []DestinationHealth {
	if h.Failures <= 0 {
		h.Failures = DefaultHealthFailures
	}
	if h.ProbeInterval <= 0 {
		h.ProbeInterval = DefaultProbeInterval
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.opts = h
	var up []DestinationHealth
	if h.Off {
		for dest, dh := range b.m {
			if dh.down {
				up = append(up, DestinationHealth{Destination: RedactURL(dest), State: HealthUp})
			}
		}
		clear(b.m)
	}
	return up
}

// healthChange is a destination going down or coming back up.
type healthChange struct {
	dest string
	down bool
	h    DestinationHealth
}

// note books an attempt's outcome; it returns the change of state it made, if any.
func (b *healthBook) note(dest string, res Result, at time.Time) (healthChange, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.opts.Off || res.Permanent {
		return healthChange{}, false
	}
	h := b.m[dest]
	if !CountsAsFailure(res) {
		if h == nil {
			return healthChange{}, false
		}
		if !h.down {
			if !h.release {
				delete(b.m, dest)
			} else {
				h.failures = 0
			}
			return healthChange{}, false
		}
		h.down, h.failures, h.since, h.nextProbe, h.release = false, 0, at, time.Time{}, true
		return healthChange{dest: dest, down: false, h: h.show(dest)}, true
	}
	if h == nil {
		h = &destHealth{since: at}
		b.m[dest] = h
	}
	h.failures++
	if h.down || h.failures < b.opts.Failures {
		return healthChange{}, false
	}
	h.down, h.since, h.nextProbe, h.release = true, at, at.Add(b.opts.ProbeInterval), false
	return healthChange{dest: dest, down: true, h: h.show(dest)}, true
}

func (h *destHealth) show(dest string) DestinationHealth {
	s := DestinationHealth{Destination: RedactURL(dest), State: HealthUp, Failures: h.failures, Since: h.since}
	if h.down {
		s.State, s.NextProbe = HealthDown, h.nextProbe
	}
	return s
}

// downDest is a destination that is down, with when its next probe may go out.
type downDest struct {
	dest      string
	nextProbe time.Time
}

// down returns the destinations that are down.
func (b *healthBook) down() []downDest {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.opts.Off {
		return nil
	}
	var out []downDest
	for dest, h := range b.m {
		if h.down {
			out = append(out, downDest{dest: dest, nextProbe: h.nextProbe})
		}
	}
	slices.SortFunc(out, func(a, b downDest) int { return strings.Compare(a.dest, b.dest) })
	return out
}

// isDown reports whether dest is down.
func (b *healthBook) isDown(dest string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	h := b.m[dest]
	return !b.opts.Off && h != nil && h.down
}

// releasing returns the destinations whose pending jobs are still to be made due.
func (b *healthBook) releasing() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.opts.Off {
		return nil
	}
	var out []string
	for dest, h := range b.m {
		if h.release {
			out = append(out, dest)
		}
	}
	slices.Sort(out)
	return out
}

// probed books a probe leased to dest at now: the next goes out ProbeInterval later at the
// earliest.
func (b *healthBook) probed(dest string, now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if h := b.m[dest]; h != nil && h.down {
		h.nextProbe = now.Add(b.opts.ProbeInterval)
	}
}

// released books that dest's pending jobs were made due.
func (b *healthBook) released(dest string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if h := b.m[dest]; h != nil {
		h.release = false
		if !h.down && h.failures == 0 {
			delete(b.m, dest)
		}
	}
}

// list returns the health of the destinations that failed lately, by destination.
func (b *healthBook) list() []DestinationHealth {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]DestinationHealth, 0, len(b.m))
	for dest, h := range b.m {
		if h.failures == 0 && !h.down {
			continue
		}
		out = append(out, h.show(dest))
	}
	slices.SortFunc(out, func(a, b DestinationHealth) int { return strings.Compare(a.Destination, b.Destination) })
	return out
}

// downCount returns how many destinations are down.
func (b *healthBook) downCount() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for _, h := range b.m {
		if h.down {
			n++
		}
	}
	return n
}

// Health returns the health of the destinations that this dispatcher saw fail lately (the
// others are up), by destination. Each process judges health on its own: in a fleet, another
// instance may see a destination otherwise.
func (d *Dispatcher) Health() []DestinationHealth { return d.health.list() }

// SetHealth replaces the destination health options (see Options.Health). The counts of
// failures so far are kept; turning health off makes every destination up (OnHealth is told).
func (d *Dispatcher) SetHealth(h Health) {
	for _, up := range d.health.set(h) {
		if d.opts.OnHealth != nil {
			d.opts.OnHealth(up)
		}
	}
}

// DestinationsDown returns how many destinations this dispatcher holds down.
func (d *Dispatcher) DestinationsDown() int { return d.health.downCount() }

// ladderEnd returns when j's retry ladder's time is over: from its creation (or its last
// replay), the sum of the schedule's delays.
func ladderEnd(j *Job, schedule []time.Duration) time.Time {
	start := j.CreatedAt
	if j.LadderBase > 0 && len(j.ReplayedAt) > 0 {
		start = j.ReplayedAt[len(j.ReplayedAt)-1]
	}
	for _, d := range schedule {
		start = start.Add(d)
	}
	return start
}

// maxSweep bounds how many due jobs of a down destination one round checks for an expired
// ladder, and how many pending jobs of a destination that came back one round makes due, so
// that a round stays one transaction of a bounded size whatever the backlog; the rest wait for
// the next rounds.
const maxSweep = 512

// sweepExpired makes dead the due jobs of the down destination dest whose ladder's time is
// over at now, so that no job outlives its ladder because its destination was down; they are
// added to res.stored and to skip. The first due job is spared: it is the probe this round
// leases, and its attempt's failure ends it (see storeOutcome).
func (d *Dispatcher) sweepExpired(tx Tx, res *roundResult, dest string, now time.Time, held map[string]lease, skip map[string]bool) error {
	var due []string
	err := tx.PendingJobs(dest, func(id string, dueAt time.Time) bool {
		if dueAt.After(now) {
			return false
		}
		if _, ok := held[id]; !ok {
			due = append(due, id)
		}
		return len(due) < maxSweep
	})
	if err != nil {
		return fmt.Errorf("listing the due jobs of %s, down: %w", RedactURL(dest), err)
	}
	schedule := *d.schedule.Load()
	for i, id := range due {
		if i == 0 {
			continue // the probe
		}
		j, err := tx.JobHead(id)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return fmt.Errorf("loading job %s of %s, down: %w", id, RedactURL(dest), err)
		}
		end := ladderEnd(j, schedule)
		if j.State != StatePending || j.DueAt.After(now) || end.After(now) {
			continue
		}
		rerr := fmt.Errorf("%w (the ladder ended at %s)", ErrLadderOver, end.UTC().Format(time.RFC3339))
		j.Lease = ""
		j.Attempts = append(j.Attempts, Attempt{At: now, Error: rerr.Error()})
		j.State, j.FinishedAt, j.DueAt = StateDead, now, now
		if err := tx.PutJobHead(j); err != nil {
			return fmt.Errorf("storing job %s dead, its ladder over: %w", id, err)
		}
		res.stored = append(res.stored, storedOutcome{job: j, res: Result{Err: rerr}})
		skip[id] = true
	}
	return nil
}

// release makes the pending jobs of dest, which came back up, due at once, each at its
// creation time, so that they go out oldest first (chains hold: the store keeps a chain's
// later jobs waiting). Jobs held, or claimed by another process, are left alone. It reports
// whether every pending job of dest is done.
func (d *Dispatcher) releaseDest(tx Tx, dest string, now time.Time, held map[string]lease) (bool, error) {
	var ids []string
	err := tx.PendingJobs(dest, func(id string, _ time.Time) bool {
		if _, ok := held[id]; !ok {
			ids = append(ids, id)
		}
		return true
	})
	if err != nil {
		return false, fmt.Errorf("listing the pending jobs of %s, back up: %w", RedactURL(dest), err)
	}
	n := 0
	for _, id := range ids {
		j, err := tx.JobHead(id)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return false, fmt.Errorf("loading job %s of %s, back up: %w", id, RedactURL(dest), err)
		}
		at := j.CreatedAt
		if at.IsZero() || at.After(now) {
			at = now
		}
		if j.State != StatePending || j.DueAt.Equal(at) || (j.Lease != "" && j.DueAt.After(now)) {
			continue
		}
		if n == maxSweep {
			return false, nil
		}
		j.DueAt = at
		if err := tx.PutJobHead(j); err != nil {
			return false, fmt.Errorf("making job %s of %s due, back up: %w", id, RedactURL(dest), err)
		}
		n++
	}
	return true, nil
}

// pullAhead makes the pending job of the down destination dest that is due first, and that
// neither this dispatcher holds nor another process claimed, due at now, for a claim to take it
// as a probe. It returns the job's ID and its due time, or "" when there is none.
func (d *Dispatcher) pullAhead(tx Tx, dest string, now time.Time, skip map[string]bool) (string, time.Time, error) {
	var ids []string
	err := tx.PendingJobs(dest, func(id string, _ time.Time) bool {
		if !skip[id] {
			ids = append(ids, id)
		}
		return len(ids) < 16
	})
	if err != nil {
		return "", time.Time{}, fmt.Errorf("listing the pending jobs of %s, down: %w", RedactURL(dest), err)
	}
	for _, id := range ids {
		j, err := tx.JobHead(id)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return "", time.Time{}, fmt.Errorf("loading job %s of %s, down: %w", id, RedactURL(dest), err)
		}
		if j.State != StatePending || j.Lease != "" {
			continue // claimed by another process: its DueAt is its claim's end
		}
		due := j.DueAt
		j.DueAt = now
		if err := tx.PutJobHead(j); err != nil {
			return "", time.Time{}, fmt.Errorf("making job %s of %s due for a probe: %w", id, RedactURL(dest), err)
		}
		return id, due, nil
	}
	return "", time.Time{}, nil
}
