package fleet

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/faxhook/caddy-faxhook/examples/harness"
)

// Defaults and bounds of the failover scenario.
const (
	// DefaultFailoverFaxes is how many faxes Failover sends.
	DefaultFailoverFaxes = 5
	// DefaultFailoverTick is the fax service's step in Failover: slow enough that no fax is
	// final (the quickest takes three ticks) before the leader is killed, right after the last
	// send.
	DefaultFailoverTick = 300 * time.Millisecond
	// TakeoverBound is how soon after the leader's death another instance must lead: a killed
	// process's session ends at once, and the others try for the lead every 2s (pgstore's
	// LeaderInterval); 1s more for starting the poller and the scheduling of a loaded machine.
	TakeoverBound = 3 * time.Second
	// DeliveryBound is how long a poll round, the observation's transaction and one delivery
	// may take between them.
	DeliveryBound = 2 * time.Second
)

// FailoverReport is the outcome of Failover. Fax ids are sorted.
type FailoverReport struct {
	// Seed is the seed the run used.
	Seed int64
	// Faxes is how many faxes were sent.
	Faxes int
	// Instances is how many Caddy processes shared the database.
	Instances int
	// Tally is what the receiver got, judged by fax.
	Tally
	// Leader is the instance that led the poller and was killed; NewLeader the one that took
	// the lead after it ("" if none did).
	Leader, NewLeader string
	// Takeover is the time from the kill to NewLeader reporting the lead.
	Takeover time.Duration
	// Bound is how soon each fax's webhook must arrive after the later of the kill and the fax
	// turning final at the service: TakeoverBound + the poll interval + DeliveryBound.
	Bound time.Duration
	// MaxLag is the longest such wait that was measured.
	MaxLag time.Duration
	// Late are the faxes whose webhook came later than Bound, or not at all.
	Late []int64
	// FinalBeforeKill is how many faxes were final at the service before the kill: their
	// webhooks may not have needed the new leader.
	FinalBeforeKill int
	// Elapsed is the run's duration, from the fleet's start to the end of the wait.
	Elapsed time.Duration
	// Dir is the work directory when it was kept (a failed run in a temporary directory, or
	// Options.Dir).
	Dir string
}

// OK reports whether another instance took the lead within TakeoverBound and every fax's
// webhook arrived, once, within Bound.
func (r FailoverReport) OK() bool {
	return r.Tally.OK() && r.NewLeader != "" && r.Takeover <= TakeoverBound && len(r.Late) == 0
}

// Print writes a summary of the report to w.
func (r FailoverReport) Print(w io.Writer) {
	fmt.Fprintf(w, "fleet failover: %d faxes through %d instances, no client reads them (seed %d) in %s\n",
		r.Faxes, r.Instances, r.Seed, r.Elapsed.Round(time.Millisecond))
	newLeader := r.NewLeader
	if newLeader == "" {
		newLeader = "none"
	}
	fmt.Fprintf(w, "  takeover    leader %s killed; %s leads after %s (bound %s)\n", r.Leader, newLeader, r.Takeover.Round(time.Millisecond), TakeoverBound)
	fmt.Fprintf(w, "  lag         longest %s from the later of the kill and a fax turning final to its webhook (bound %s); %d faxes final before the kill\n",
		r.MaxLag.Round(time.Millisecond), r.Bound, r.FinalBeforeKill)
	printIDs(w, "late", r.Late)
	r.Tally.print(w)
	if r.Dir != "" {
		fmt.Fprintf(w, "  work dir    %s\n", r.Dir)
	}
	fmt.Fprintf(w, "  result      %s\n", verdict(r.OK()))
}

// Failover sends faxes through the fleet that no client asks about again, kills the instance
// that leads the poller before they are final, and measures how soon another instance leads
// and how soon each fax's webhook arrives. The killed instance stays down. The error is for a
// run that could not be carried out; a slow takeover or a late webhook is reported, not
// returned.
func Failover(ctx context.Context, opts Options) (FailoverReport, error) {
	opts = withDefaults(opts)
	if opts.Faxes <= 0 {
		opts.Faxes = DefaultFailoverFaxes
	}
	if opts.Tick <= 0 {
		opts.Tick = DefaultFailoverTick
	}
	rep := &FailoverReport{Seed: opts.Seed, Faxes: opts.Faxes, Instances: opts.Instances,
		Bound: TakeoverBound + opts.PollInterval + DeliveryBound}
	if opts.Instances < 2 {
		return *rep, fmt.Errorf("a fleet needs at least 2 instances, not %d", opts.Instances)
	}
	dir, temp, err := workDir(opts, "faxhook-failover-")
	if err != nil {
		return *rep, err
	}
	start := time.Now()
	e, err := setUp(ctx, opts, dir, opts.Tick)
	if err == nil {
		err = failover(ctx, e, rep)
	}
	if err != nil && e.fleet != nil {
		err = fmt.Errorf("%w; instance logs:%s", err, e.tail(20))
	}
	rep.Elapsed = time.Since(start)
	if terr := e.tearDown(); err == nil {
		err = terr
	}
	if temp && err == nil && rep.OK() {
		os.RemoveAll(dir)
	} else {
		rep.Dir = dir
	}
	return *rep, err
}

// failover carries out the scenario on a fleet that is up and fills rep.
func failover(ctx context.Context, e *env, rep *FailoverReport) error {
	lead := e.fleet.waitLeader(ctx, nil, 30*time.Second)
	if lead == nil {
		return fmt.Errorf("no instance reports the poller's lead (metric %s on the admin /metrics, or the log line %q)", leaderMetric, leaderLogLine)
	}
	e.logf("fleet: instance %s leads the poller", lead.name)

	// The fax service is watched directly, not through Caddy, for the moment each fax turns
	// final: faxhook must learn of it only through its own poller.
	direct := &harness.Client{Base: e.faxURL + "/v2.1", Key: key, Secret: secret}
	wctx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	expected := map[int64]string{}
	var mu sync.Mutex // guards finalAt while the watchers run
	finalAt := map[int64]time.Time{}
	var watchers sync.WaitGroup

	rng := rand.New(rand.NewPCG(uint64(e.opts.Seed), 0x6661696c))
	for i := range e.opts.Faxes {
		o, want := sendOptions(i, faxPlan{to: recipients[rng.IntN(len(recipients))], pages: 1 + rng.IntN(2)})
		if o.CallbackURL != "" {
			o.CallbackURL = e.rcvURL + o.CallbackURL
		}
		id, err := e.fleet.pick().client.Send(ctx, o)
		if err != nil {
			return fmt.Errorf("sending fax %d: %w", i, err)
		}
		expected[id] = want
		watchers.Add(1)
		go func() {
			defer watchers.Done()
			for wctx.Err() == nil {
				if s, err := direct.Status(wctx, id); err == nil && final(s) {
					mu.Lock()
					finalAt[id] = time.Now()
					mu.Unlock()
					return
				}
				select {
				case <-wctx.Done():
				case <-time.After(e.opts.Tick / 10):
				}
			}
		}()
	}
	e.logf("fleet: %d faxes sent; no client reads them again", len(expected))

	// No pause: in a fleet a send is in the shared store before its answer, so every fax is
	// the fleet's to complete from now on, whichever instance took it.
	if l := e.fleet.leader(ctx); l != nil {
		lead = l
	}
	killAt := time.Now()
	e.fleet.crash(lead)
	rep.Leader = lead.name
	next := e.fleet.waitLeader(ctx, lead, TakeoverBound+10*time.Second)
	if next != nil {
		rep.NewLeader, rep.Takeover = next.name, time.Since(killAt)
		e.logf("fleet: killed leader %s; %s leads after %s", lead.name, next.name, rep.Takeover.Round(time.Millisecond))
	} else {
		rep.Takeover = time.Since(killAt)
		e.logf("fleet: killed leader %s; no instance took the lead within %s", lead.name, rep.Takeover.Round(time.Millisecond))
	}

	// Wait for every webhook, at most opts.Drain.
	deadline := time.Now().Add(e.opts.Drain)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if deliveredAll(expected, e.rec.arrivals()) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Late duplicates (a second poller's observation) would come within a poll interval or two.
	select {
	case <-ctx.Done():
	case <-time.After(max(time.Second, 2*e.opts.PollInterval)):
	}
	stopWatch()
	watchers.Wait()

	arrivals := e.rec.arrivals()
	rep.Tally = tally(expected, arrivals, []killing{{name: lead.name, at: killAt}}, ruleFor(e.opts.Timeout))
	first := map[int64]time.Time{}
	for _, a := range arrivals {
		if _, ok := first[a.faxID]; !ok && a.accepted() && a.eventType == eventCompleted {
			first[a.faxID] = a.at
		}
	}
	for id := range expected {
		f, ok := finalAt[id]
		if ok && f.Before(killAt) {
			rep.FinalBeforeKill++
		}
		got, ok := first[id]
		if !ok {
			rep.Late = append(rep.Late, id)
			continue
		}
		lag := got.Sub(laterOf(killAt, f))
		rep.MaxLag = max(rep.MaxLag, lag)
		if lag > rep.Bound {
			rep.Late = append(rep.Late, id)
		}
	}
	slices.Sort(rep.Late)
	return ctx.Err()
}

// deliveredAll reports whether every expected fax has an accepted fax_completed.
func deliveredAll(expected map[int64]string, arrivals []arrival) bool {
	seen := map[int64]bool{}
	for _, a := range arrivals {
		if _, ok := expected[a.faxID]; ok && a.accepted() && a.eventType == eventCompleted {
			seen[a.faxID] = true
		}
	}
	return len(seen) == len(expected)
}

func laterOf(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
