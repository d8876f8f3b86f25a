// Package fleet checks faxhook's fleet mode end to end: several Caddy processes with the plugin
// share one queue in one PostgreSQL database, in front of one fax service. It is the fleet's
// counterpart of package chaos.
//
// Run is the chaos run. One PostgreSQL server (a throwaway one on loopback), the simulated fax
// service and a signature-verifying receiver run in this process; Options.Instances Caddy
// processes (three by default) run over one database, each with its own send journal. Clients send
// faxes and follow them until they are final, every request (send or status read) through an
// instance drawn at random, repeating calls that failed because that instance was down. Meanwhile
// the run kills instances with SIGKILL and restarts them, one at a time (never all at once),
// every other kill aimed at the instance that leads the poller, and never the same instance twice
// in a row, so at least two different instances die. Once every instance is up for good, every
// expected fax is read once more through some instance, and the run waits until the shared queue
// has drained.
//
// Then it judges what the receiver got, by fax and by event (the X-Faxhook-Event-Id header),
// knowing which instance sent each webhook (traced from its connection, see owner.go) and when
// each instance was killed:
//   - lost: an expected fax without an accepted fax_completed. Failure.
//   - duplicate event: one state change of a fax delivered as two events, because two instances
//     both turned the same observation into an event or both attempted the same job. Failure:
//     the fleet promises exactly one event per change. faxhook's event ids are stable (fax id,
//     event type, extra fields), so two such events mostly share their id; a fax counts when
//     one change came with two different ids, or when an event was accepted again and no kill
//     explains it (see repeatRule).
//   - repeated delivery: an event accepted again after the instance that sent it was killed, so
//     it may have died between the receiver's answer and recording it. At-least-once delivery
//     allows it; counted and reported.
//   - out of order: a fax's events (with Options.Inflight) arriving in another order than they
//     happened, e.g. a transmitting_page after the fax_completed. Failure.
//   - misrouted: an event of a fax at another URL than its callback_url (even-numbered faxes ask
//     for .../cb/N, the others get the global sent_url). Failure.
//
// As in chaos, only faxes whose send succeeded are expected; a send cut off by a kill is sent
// again as a new fax. The fax the service may have created for the cut-off request is no longer
// silent here: if the instance recorded it, the fleet's poller follows it and its webhook
// arrives. Such faxes are reported as unexpected, not as a failure.
//
// Failover is the leader scenario: faxes are sent through the fleet and never asked about again
// by any client; the instance that leads the poller is killed right after the last send, before
// they complete, and the others must take over the lead and deliver every fax's webhook within a
// bound.
//
// Everything a run starts stops with it: the Caddy processes (also when this process is killed,
// see instance.prepare), PostgreSQL (pgtest's server, which dies with its parent), the fax
// service and the receiver.
package fleet

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/faxhook/caddy-faxhook/examples/faxapp"
	"github.com/faxhook/caddy-faxhook/examples/harness"
	"github.com/faxhook/caddy-faxhook/examples/receiver"
)

// Defaults applied by Run and Failover to zero Options fields.
const (
	// DefaultInstances is how many Caddy processes form the fleet.
	DefaultInstances = 3
	// DefaultFaxes is how many faxes a chaos run sends.
	DefaultFaxes = 200
	// DefaultKills is how many times a chaos run kills an instance.
	DefaultKills = 6
	// DefaultConcurrency is how many clients send and follow faxes at once.
	DefaultConcurrency = 8
	// DefaultTick is the fax service's simulation step in a chaos run: a one-page fax takes
	// about five.
	DefaultTick = 20 * time.Millisecond
	// DefaultPollInterval is the poller's interval: short, so that a fax no client reads is
	// found soon.
	DefaultPollInterval = time.Second
	// DefaultTimeout bounds each delivery attempt. It is short because a claim on a job lasts
	// the timeout plus 30s: that is how long a job an instance was attempting when it was
	// killed waits before another instance attempts it again.
	DefaultTimeout = 2 * time.Second
	// DefaultDrain bounds the wait for the queue to drain after every fax was read once more.
	// It covers a claim left by a kill (DefaultTimeout + 30s) and then some.
	DefaultDrain = 90 * time.Second
	// RetrySchedule is the retry_schedule the instances run with: short, so that refused attempts
	// are repeated within the run.
	RetrySchedule = "200ms 400ms 800ms 1s 1s 1s 1s 1s 1s 1s 1s 1s 1s 1s 1s 1s"
)

const (
	token  = "fleet-webhook-token"
	key    = "fleet-key"
	secret = "fleet-secret"
)

// Options configures a run. The zero value is usable: every zero field takes its default.
type Options struct {
	// CaddyBinary is a Caddy built with the faxhook plugin. Empty means harness.CaddyBinary():
	// $FAXHOOK_CADDY, else one built with `go build` from examples/cmd/caddy.
	CaddyBinary string
	// Instances is how many Caddy processes share the database. Default DefaultInstances; at
	// least 2.
	Instances int
	// Faxes is how many faxes are sent successfully. Default DefaultFaxes (Run) or
	// DefaultFailoverFaxes (Failover).
	Faxes int
	// Kills is how many times Run kills an instance with SIGKILL and restarts it. Default
	// DefaultKills; negative means none. Failover kills the leader once, whatever it says.
	Kills int
	// Seed chooses the kill moments, the downtimes and the recipients' behaviour.
	Seed int64
	// Concurrency is how many clients send and follow faxes at once. Default DefaultConcurrency.
	Concurrency int
	// Tick is the fax service's simulation step. Default DefaultTick (Run) or DefaultFailoverTick
	// (Failover).
	Tick time.Duration
	// PollInterval is the poller's interval. Default DefaultPollInterval.
	PollInterval time.Duration
	// Timeout bounds each delivery attempt. Default DefaultTimeout.
	Timeout time.Duration
	// Inflight turns on transmitting_page and retry_scheduled events, whose order per fax the
	// run then checks too.
	Inflight bool
	// FailRate is the share of verified webhook requests the receiver refuses (503), so that
	// retries move between instances. Default 0.
	FailRate float64
	// Drain bounds the wait for the queue to drain at the end. Default DefaultDrain.
	Drain time.Duration
	// Dir is the work directory: each instance's Caddyfile, log and journal under its name.
	// Empty means a new temporary directory, removed at the end unless the run failed
	// (Report.Dir names it).
	Dir string
	// Faxhook holds extra lines for the global faxhook block of every Caddyfile. RCV in it is
	// replaced by the receiver's URL.
	Faxhook string
	// Log, if non-nil, receives a line per kill and per phase of the run.
	Log io.Writer
}

// withDefaults fills the zero fields of o with the defaults shared by both scenarios.
func withDefaults(o Options) Options {
	if o.Instances <= 0 {
		o.Instances = DefaultInstances
	}
	if o.Kills == 0 {
		o.Kills = DefaultKills
	}
	o.Kills = max(o.Kills, 0)
	if o.Concurrency <= 0 {
		o.Concurrency = DefaultConcurrency
	}
	if o.PollInterval <= 0 {
		o.PollInterval = DefaultPollInterval
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.Drain <= 0 {
		o.Drain = DefaultDrain
	}
	return o
}

// Report is the outcome of a chaos run. Fax ids are sorted.
type Report struct {
	// Seed is the seed the run used.
	Seed int64
	// Faxes is how many faxes the run set out to send.
	Faxes int
	// Instances is how many Caddy processes shared the database.
	Instances int
	// Tally is what the receiver got, judged by fax.
	Tally
	// Kills is how many times an instance was killed.
	Kills int
	// KillsOf counts the kills per instance name.
	KillsOf map[string]int
	// LeaderKills is how many of the kills hit the instance that led the poller at the time.
	LeaderKills int
	// SendRetries is how many sends were repeated because the chosen instance was down or died
	// during the call.
	SendRetries int
	// ReadRetries is how many reads of a fax were repeated for the same reason.
	ReadRetries int
	// Unfinished is how many jobs the shared queue still held unfinished at the end (-1: the
	// count could not be read); Dead how many had died.
	Unfinished, Dead int
	// Notes tell, for each misrouted fax, the instance that took its send, through which
	// instance and how soon after the send a client first read it final, and whether the
	// instance that took the send was killed in between.
	Notes []string
	// Elapsed is the run's duration, from the fleet's start to the end of the drain.
	Elapsed time.Duration
	// Dir is the work directory when it was kept (a failed run in a temporary directory, or
	// Options.Dir).
	Dir string
}

// OK reports whether every expected fax completed exactly once, in order, at its URL, every
// request verified and the queue drained.
func (r Report) OK() bool { return r.Tally.OK() && r.Unfinished == 0 }

// Print writes a summary of the report to w.
func (r Report) Print(w io.Writer) {
	fmt.Fprintf(w, "fleet: %d faxes through %d instances, %d kills (seed %d) in %s\n", r.Faxes, r.Instances, r.Kills, r.Seed, r.Elapsed.Round(time.Millisecond))
	var per []string
	for _, n := range slices.Sorted(maps.Keys(r.KillsOf)) {
		per = append(per, fmt.Sprintf("%s×%d", n, r.KillsOf[n]))
	}
	fmt.Fprintf(w, "  kills       %s; %d of the leader (%d sends and %d reads repeated while an instance was down)\n",
		cmp.Or(strings.Join(per, " "), "none"), r.LeaderKills, r.SendRetries, r.ReadRetries)
	r.Tally.print(w)
	unfinished := fmt.Sprint(r.Unfinished)
	if r.Unfinished < 0 {
		unfinished = "unknown"
	}
	fmt.Fprintf(w, "  queue       %s jobs unfinished, %d dead at the end\n", unfinished, r.Dead)
	const notes = 10
	for i, n := range r.Notes {
		if i == notes {
			fmt.Fprintf(w, "  note        … %d more\n", len(r.Notes)-notes)
			break
		}
		fmt.Fprintf(w, "  note        %s\n", n)
	}
	if r.Dir != "" {
		fmt.Fprintf(w, "  work dir    %s\n", r.Dir)
	}
	fmt.Fprintf(w, "  result      %s\n", verdict(r.OK()))
}

func verdict(ok bool) string {
	if ok {
		return "OK"
	}
	return "FAILED"
}

// env is what both scenarios run: the database, the fax service, the receiver and the fleet.
type env struct {
	opts    Options
	dir     string
	db      *database
	svc     *faxapp.Service
	faxURL  string
	rcvURL  string
	rcv     *receiver.Receiver
	rec     *recorder
	fleet   *cluster
	api     *http.Client // the clients' HTTP client
	logMu   sync.Mutex
	cleanup []func() error
}

func (e *env) logf(format string, args ...any) {
	if e.opts.Log == nil {
		return
	}
	e.logMu.Lock()
	defer e.logMu.Unlock()
	fmt.Fprintf(e.opts.Log, format+"\n", args...)
}

// setUp starts everything a scenario needs, in dir. Whatever it started is stopped by
// e.tearDown, also when it fails half way.
func setUp(ctx context.Context, opts Options, dir string, tick time.Duration) (e *env, err error) {
	e = &env{opts: opts, dir: dir}
	bin := opts.CaddyBinary
	if bin == "" {
		if bin, err = harness.CaddyBinary(); err != nil {
			return e, fmt.Errorf("finding a Caddy with faxhook: %w", err)
		}
	}
	if e.db, err = startDatabase(ctx); err != nil {
		return e, err
	}
	e.cleanup = append(e.cleanup, e.db.stop)

	e.svc = faxapp.New(faxapp.Config{APIKey: key, APISecret: secret, Tick: tick, Seed: opts.Seed & 0xffff})
	var stopFax func()
	if e.faxURL, stopFax, err = harness.Serve(e.svc); err != nil {
		return e, fmt.Errorf("starting the fax service: %w", err)
	}
	e.cleanup = append(e.cleanup, func() error { stopFax(); return nil })

	var refuse func(receiver.Delivery) int
	if opts.FailRate > 0 {
		var mu sync.Mutex
		rng := rand.New(rand.NewPCG(uint64(opts.Seed), 0x726566757365))
		refuse = func(d receiver.Delivery) int {
			mu.Lock()
			defer mu.Unlock()
			if d.Verified && rng.Float64() < opts.FailRate {
				return refusedStatus
			}
			return 0
		}
	}
	e.api = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: opts.Concurrency}}
	fleet, err := newCluster(dir, opts.Instances, e.api)
	if err != nil {
		return e, err
	}

	e.rcv = receiver.New(receiver.Config{Token: token, Respond: refuse})
	e.rec = newRecorder(e.rcv)
	var stopRcv func()
	if e.rcvURL, stopRcv, err = serveAttributed(e.rec, fleet.pids); err != nil {
		return e, fmt.Errorf("starting the receiver: %w", err)
	}
	e.cleanup = append(e.cleanup, func() error { stopRcv(); return nil })

	if err := fleet.start(bin, dir, e.caddyfile, "FAXHOOK_TOKEN="+token); err != nil {
		return e, err
	}
	e.fleet = fleet
	e.cleanup = append(e.cleanup, e.fleet.stop)
	var sites []string
	for _, in := range e.fleet.insts {
		sites = append(sites, in.name+"="+in.site)
	}
	e.logf("fleet: %d instances up (%s), PostgreSQL %s, fax service %s, receiver %s, work dir %s",
		len(sites), strings.Join(sites, " "), e.db.dsn, e.faxURL, e.rcvURL, dir)
	return e, nil
}

// tearDown stops everything setUp started, the fleet first, and reports what failed.
func (e *env) tearDown() error {
	var errs []error
	for i := len(e.cleanup) - 1; i >= 0; i-- {
		if err := e.cleanup[i](); err != nil {
			errs = append(errs, err)
		}
	}
	e.cleanup = nil
	if len(errs) > 0 {
		return fmt.Errorf("stopping the run: %w", errors.Join(errs...))
	}
	return nil
}

// caddyfile is one instance's Caddyfile: all share the storage, the webhook settings and the
// poller; each has its own admin and site address, journal and name.
func (e *env) caddyfile(in *instance) string {
	var extra []string
	if e.opts.Inflight {
		extra = append(extra, "inflight on")
	}
	if e.opts.Faxhook != "" {
		extra = append(extra, strings.ReplaceAll(e.opts.Faxhook, "RCV", e.rcvURL))
	}
	lines := ""
	for _, l := range extra {
		lines += "\t\t" + l + "\n"
	}
	return fmt.Sprintf(`{
	admin %s
	auto_https off
	faxhook {
		storage %s
		postgres {
			journal %s
			instance %s
		}
		token {env.FAXHOOK_TOKEN}
		sent_url %s/sent
		retry_schedule %s
		timeout %s
		allow_private 127.0.0.0/8
%s		poll {
			upstream %s/v2.1
			credentials %s %s
			interval %s
		}
	}
}

http://%s {
	handle /v2.1/* {
		faxhook
		reverse_proxy %s
	}
}
`, in.admin, e.db.dsn, in.journal, in.name, e.rcvURL, RetrySchedule, e.opts.Timeout, lines,
		e.faxURL, key, secret, e.opts.PollInterval, in.site, e.faxURL)
}

// workDir returns the run's directory and whether it is a temporary one of the run's own.
func workDir(opts Options, prefix string) (string, bool, error) {
	if opts.Dir != "" {
		return opts.Dir, false, os.MkdirAll(opts.Dir, 0o755)
	}
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		return "", false, fmt.Errorf("creating the work directory: %w", err)
	}
	return dir, true, nil
}

// tail returns the last lines of every instance's log, for an error message.
func (e *env) tail(n int) string {
	if e.fleet == nil {
		return ""
	}
	var b strings.Builder
	for _, in := range e.fleet.insts {
		if in.caddy == nil {
			continue
		}
		fmt.Fprintf(&b, "\n--- instance %s (%s):\n%s", in.name, in.caddy.Log, in.caddy.Tail(n))
	}
	return b.String()
}

// chaosRun is the state of one Run.
type chaosRun struct {
	*env
	rng *rand.Rand // drawn from only before the clients and the killer start

	mu       sync.Mutex
	expected map[int64]string // fax id → the path its webhook must arrive at
	kills    []killing        // the kills made so far
	trails   map[int64]*trail // fax id → how the clients sent and read it

	sent        atomic.Int64 // successful sends
	clientsDone atomic.Bool  // every fax was sent and followed
	sendRetries atomic.Int64
	readRetries atomic.Int64
}

// Run performs one chaos run over a fleet and reports what arrived. The error is for a run that
// could not be carried out (PostgreSQL or Caddy would not start, ctx ended); lost or duplicate
// webhooks are reported, not returned.
func Run(ctx context.Context, opts Options) (Report, error) {
	opts = withDefaults(opts)
	if opts.Faxes <= 0 {
		opts.Faxes = DefaultFaxes
	}
	if opts.Tick <= 0 {
		opts.Tick = DefaultTick
	}
	rep := &Report{Seed: opts.Seed, Faxes: opts.Faxes, Instances: opts.Instances, KillsOf: map[string]int{}, Unfinished: -1}
	if opts.Instances < 2 {
		return *rep, fmt.Errorf("a fleet needs at least 2 instances, not %d", opts.Instances)
	}
	dir, temp, err := workDir(opts, "faxhook-fleet-")
	if err != nil {
		return *rep, err
	}
	start := time.Now()
	e, err := setUp(ctx, opts, dir, opts.Tick)
	if err == nil {
		r := &chaosRun{env: e, rng: rand.New(rand.NewPCG(uint64(opts.Seed), 0x666c656574)), expected: map[int64]string{}, trails: map[int64]*trail{}}
		err = r.run(ctx, rep)
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

// run carries out the chaos run on a fleet that is up and fills rep.
func (r *chaosRun) run(ctx context.Context, rep *Report) error {
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	plans, kills := r.plan(), r.killPlan()
	var clientErr, killErr error
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		if clientErr = r.clients(cctx, plans); clientErr != nil {
			cancel()
		}
		r.clientsDone.Store(true)
	}()
	go func() {
		defer wg.Done()
		if killErr = r.killer(cctx, kills, rep); killErr != nil {
			cancel()
		}
	}()
	wg.Wait()
	if err := cmp.Or(killErr, clientErr); err != nil {
		return fmt.Errorf("after %d kills: %w", rep.Kills, err)
	}

	// Every instance is up for good: let the fleet see every expected fax in its final state.
	r.logf("fleet: %d faxes followed, %d kills done; reading every fax once more through the fleet", r.sent.Load(), rep.Kills)
	if err := r.sweep(ctx); err != nil {
		return fmt.Errorf("final read of every fax: %w", err)
	}
	rep.Unfinished, rep.Dead = r.drain(ctx)
	r.mu.Lock()
	rep.Tally = tally(r.expected, r.rec.arrivals(), r.kills, ruleFor(r.opts.Timeout))
	for _, id := range rep.Misrouted {
		rep.Notes = append(rep.Notes, r.trails[id].describe(id, r.kills))
	}
	r.mu.Unlock()
	rep.SendRetries = int(r.sendRetries.Load())
	rep.ReadRetries = int(r.readRetries.Load())
	return ctx.Err()
}

// recipients are the fax service's scripted behaviours: success, busy once, always busy
// (failure), failure on page 2. Each fax gets one at random.
var recipients = []string{"+15550100000", "+15550100001", "+15550100002", "+15550100003"}

// faxPlan is what one fax is.
type faxPlan struct {
	to    string
	pages int
}

// trail is how the clients sent a fax and first saw it final: what a misrouted fax's note
// tells.
type trail struct {
	via      string    // the instance that took the send
	sentAt   time.Time // when its answer came
	finalVia string    // the instance through which a read first found the fax final
	finalAt  time.Time
}

// describe tells the trail of fax id, and the kill of the instance that took its send between
// the send and the first read that found the fax final, if there was one.
func (t *trail) describe(id int64, kills []killing) string {
	if t == nil {
		return fmt.Sprintf("fax %d: not sent by a client", id)
	}
	s := fmt.Sprintf("fax %d: sent through %s", id, t.via)
	if t.finalVia != "" {
		s += fmt.Sprintf("; first read final through %s %s after the send", t.finalVia, t.finalAt.Sub(t.sentAt).Round(time.Millisecond))
	}
	for _, k := range kills {
		if k.name == t.via && !k.at.Before(t.sentAt) && (t.finalVia == "" || k.at.Before(t.finalAt)) {
			s += fmt.Sprintf("; %s was killed %s after the send, before that read", k.name, k.at.Sub(t.sentAt).Round(time.Millisecond))
			break
		}
	}
	return s
}

// plan draws every fax's recipient and page count.
func (r *chaosRun) plan() []faxPlan {
	plans := make([]faxPlan, r.opts.Faxes)
	for i := range plans {
		plans[i] = faxPlan{to: recipients[r.rng.IntN(len(recipients))], pages: 1 + r.rng.IntN(2)}
	}
	return plans
}

// sendOptions is fax number i of plan p: even-numbered faxes carry their own callback_url
// (half of them after the file part), the others rely on sent_url. It returns the path their
// webhooks must arrive at.
func sendOptions(i int, p faxPlan) (harness.SendOptions, string) {
	o := harness.SendOptions{To: []string{p.to}, File: faxapp.PDF(p.pages)}
	if i%2 != 0 {
		return o, "/sent"
	}
	path := fmt.Sprintf("/cb/%d", i)
	o.CallbackURL, o.CallbackAfterFile = path, i%4 == 0
	return o, path
}

// clients sends and follows the planned faxes with opts.Concurrency goroutines.
func (r *chaosRun) clients(ctx context.Context, plans []faxPlan) error {
	return harness.ForEach(ctx, len(plans), r.opts.Concurrency, func(i int) error { return r.one(ctx, i, plans[i]) })
}

// one sends fax number i through random instances until a send succeeds, then follows it
// through random instances until it is final.
func (r *chaosRun) one(ctx context.Context, i int, p faxPlan) error {
	o, want := sendOptions(i, p)
	if o.CallbackURL != "" {
		o.CallbackURL = r.rcvURL + o.CallbackURL
	}
	var id int64
	for try := 0; ; try++ {
		var err error
		in := r.fleet.pick()
		if id, err = in.client.Send(ctx, o); err == nil {
			r.mu.Lock()
			r.trails[id] = &trail{via: in.name, sentAt: time.Now()}
			r.mu.Unlock()
			break
		}
		if err := pause(ctx, r.opts.Tick, try); err != nil {
			return fmt.Errorf("sending fax %d: %w", i, err)
		}
		r.sendRetries.Add(1)
	}
	r.mu.Lock()
	r.expected[id] = want
	r.mu.Unlock()
	r.sent.Add(1)
	return r.follow(ctx, id, true)
}

// follow reads fax id through random instances, repeating failed reads, until it is final
// (untilFinal) or once.
func (r *chaosRun) follow(ctx context.Context, id int64, untilFinal bool) error {
	for try := 0; ; try++ {
		in := r.fleet.pick()
		s, err := in.client.Status(ctx, id)
		if err == nil && final(s) {
			r.mu.Lock()
			if tr := r.trails[id]; tr != nil && tr.finalVia == "" {
				tr.finalVia, tr.finalAt = in.name, time.Now()
			}
			r.mu.Unlock()
		}
		if err == nil && (!untilFinal || final(s)) {
			return nil
		}
		if err == nil {
			try = 0
		} else {
			r.readRetries.Add(1)
		}
		if err := pause(ctx, r.opts.Tick, try); err != nil {
			return fmt.Errorf("following fax %d: %w", id, err)
		}
	}
}

func final(status string) bool {
	return status == "success" || status == "failure" || status == "partialsuccess"
}

// pause waits before the next call: one tick after a good answer or a first failure (the next
// call likely goes to another instance), longer (up to 200ms) after more failures in a row.
func pause(ctx context.Context, tick time.Duration, failures int) error {
	d := tick << min(max(failures-1, 0), 4)
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(min(d, 200*time.Millisecond)):
		return nil
	}
}

// kill is one planned kill of an instance.
type kill struct {
	at     int64         // when this many faxes have been sent successfully,
	delay  time.Duration // and this much later, an instance is killed;
	down   time.Duration // it stays down this long before the restart
	leader bool          // aim at the instance that leads the poller, else at another
}

// killPlan draws opts.Kills kills at progress points spread over 5%–95% of the faxes, each
// after a delay of up to five ticks and with a downtime of up to 500ms, in progress order;
// every other kill (the first, the third, …) is aimed at the leader.
func (r *chaosRun) killPlan() []kill {
	ks := make([]kill, r.opts.Kills)
	for k := range ks {
		ks[k] = kill{
			at:    int64(float64(r.opts.Faxes) * (0.05 + 0.9*r.rng.Float64())),
			delay: time.Duration(r.rng.Int64N(int64(5*r.opts.Tick) + 1)),
			down:  time.Duration(r.rng.Int64N(int64(500*time.Millisecond) + 1)),
		}
	}
	slices.SortFunc(ks, func(a, b kill) int { return cmp.Compare(a.at, b.at) })
	for k := range ks {
		ks[k].leader = k%2 == 0
	}
	return ks
}

// target chooses the instance a kill hits: never the one the previous kill hit (so that two
// kills hit two instances), the leader when the kill is aimed at it, else one of the others at
// random.
func (r *chaosRun) target(ctx context.Context, kl kill, prev *instance) (*instance, bool) {
	lead := r.fleet.leader(ctx)
	var others []*instance
	for _, in := range r.fleet.insts {
		if in != prev && in != lead {
			others = append(others, in)
		}
	}
	if kl.leader && lead != nil && lead != prev {
		return lead, true
	}
	if len(others) == 0 {
		return lead, lead != nil
	}
	return others[rand.IntN(len(others))], false
}

// killer carries out the kills, restarting the instance after each, so that at most one
// instance is down at a time. Kills whose point the clients never reach (they finished first)
// still happen, while the last webhooks are being delivered.
func (r *chaosRun) killer(ctx context.Context, ks []kill, rep *Report) error {
	var prev *instance
	for k, kl := range ks {
		for r.sent.Load() < kl.at && !r.clientsDone.Load() {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(2 * time.Millisecond):
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(kl.delay):
		}
		in, wasLeader := r.target(ctx, kl, prev)
		at := r.sent.Load()
		r.mu.Lock()
		r.kills = append(r.kills, killing{name: in.name, at: time.Now()})
		r.mu.Unlock()
		r.fleet.crash(in)
		rep.Kills++
		rep.KillsOf[in.name]++
		if wasLeader {
			rep.LeaderKills++
		}
		prev = in
		time.Sleep(kl.down)
		t0 := time.Now()
		if err := r.fleet.restart(in); err != nil {
			return fmt.Errorf("after kill %d: %w", k+1, err)
		}
		role := ""
		if wasLeader {
			role = " (the leader)"
		}
		r.logf("fleet: kill %d/%d of instance %s%s at %d/%d faxes sent; down %s, restarted in %s", k+1, len(ks), in.name, role,
			at, r.opts.Faxes, kl.down.Round(time.Millisecond), time.Since(t0).Round(time.Millisecond))
	}
	return nil
}

// sweep reads every expected fax once through a random instance, with opts.Concurrency readers.
func (r *chaosRun) sweep(ctx context.Context) error {
	r.mu.Lock()
	ids := slices.Collect(maps.Keys(r.expected))
	r.mu.Unlock()
	work := make(chan int64)
	var firstErr error
	var once sync.Once
	var wg sync.WaitGroup
	for range r.opts.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := range work {
				if err := r.follow(ctx, id, false); err != nil {
					once.Do(func() { firstErr = err })
				}
			}
		}()
	}
	for _, id := range ids {
		work <- id
	}
	close(work)
	wg.Wait()
	return firstErr
}

// drain waits until every expected fax has an accepted fax_completed and the shared queue holds
// no unfinished job, or opts.Drain has passed; then a little longer (two poll intervals, at
// least a second) so that late duplicates and repeats are counted. It returns the queue's
// unfinished (-1 when unknown) and dead jobs.
func (r *chaosRun) drain(ctx context.Context) (unfinished, dead int) {
	r.mu.Lock()
	want := len(r.expected)
	r.mu.Unlock()
	t0 := time.Now()
	deadline := t0.Add(r.opts.Drain)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if r.delivered() >= want {
			if jc, err := r.fleet.jobs(ctx); err == nil && jc.unfinished == 0 {
				r.logf("fleet: all %d expected webhooks arrived and the queue drained in %s", want, time.Since(t0).Round(time.Millisecond))
				break
			}
		}
		time.Sleep(250 * time.Millisecond)
	}
	select {
	case <-ctx.Done():
	case <-time.After(max(time.Second, 2*r.opts.PollInterval)):
	}
	jc, err := r.fleet.jobs(ctx)
	if err != nil {
		r.logf("fleet: %v", err)
		return -1, 0
	}
	return jc.unfinished, jc.dead
}

// delivered counts the expected faxes with an accepted fax_completed.
func (r *chaosRun) delivered() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	seen := map[int64]bool{}
	for _, a := range r.rec.arrivals() {
		if _, ok := r.expected[a.faxID]; ok && a.accepted() && a.eventType == eventCompleted {
			seen[a.faxID] = true
		}
	}
	return len(seen)
}
