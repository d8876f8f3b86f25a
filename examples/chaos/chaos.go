// Package chaos checks faxhook's crash safety end to end: it runs the simulated fax service, a
// signature-verifying receiver and a real Caddy process with the plugin, sends faxes through Caddy
// while killing Caddy with SIGKILL at random moments and restarting it, and at the end counts, by
// fax id, the webhooks expected against those received: lost, duplicated, misrouted.
//
// The fax service and the receiver run in this process and outlive every kill; only Caddy (and with
// it faxhook's queue and tracker) crashes. Clients send each fax through Caddy and follow it through
// Caddy until it is final, repeating any call that failed because Caddy was down. Only faxes whose
// send succeeded are expected: a send cut off by a kill is sent again as a new fax, and the fax the
// service may have created for the cut-off request is never followed, so it produces no webhook.
//
// faxhook learns that a fax completed only by seeing it through Caddy (there is no poller yet), and
// an observation still being recorded when Caddy dies is gone. So once the last kill is over, every
// expected fax is read through Caddy once more; from then on every webhook is faxhook's to deliver.
//
// Even-numbered faxes carry their own callback_url (.../cb/N), the others rely on the global
// sent_url (.../sent). A callback fax whose webhook arrives at the sent_url was misrouted: faxhook
// lost its callback_url in a crash and fell back to the global URL.
package chaos

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/faxhook/caddy-faxhook/examples/faxapp"
	"github.com/faxhook/caddy-faxhook/examples/harness"
	"github.com/faxhook/caddy-faxhook/examples/receiver"
)

// Defaults applied by Run to zero Options fields.
const (
	// DefaultFaxes is how many faxes a run sends.
	DefaultFaxes = 1000
	// DefaultKills is how many times a run kills Caddy.
	DefaultKills = 20
	// DefaultConcurrency is how many clients send and follow faxes at once.
	DefaultConcurrency = 8
	// DefaultTick is the fax service's simulation step: a one-page fax takes about five.
	DefaultTick = 20 * time.Millisecond
	// DefaultDrain bounds the wait for outstanding webhooks after the last fax was followed.
	DefaultDrain = 60 * time.Second
	// RetrySchedule is the retry_schedule Caddy runs with: short, so that attempts cut off by a kill
	// or refused by a receiver are repeated within the run.
	RetrySchedule = "200ms 400ms 800ms 1s 1s 1s 1s 1s 1s 1s 1s 1s 1s 1s 1s 1s"
)

const (
	token  = "chaos-webhook-token"
	key    = "chaos-key"
	secret = "chaos-secret"
)

// Options configures a run. The zero value is usable: every zero field takes its default.
type Options struct {
	// CaddyBinary is a Caddy built with the faxhook plugin. Empty means harness.CaddyBinary():
	// $FAXHOOK_CADDY, else one built with `go build` from examples/cmd/caddy.
	CaddyBinary string
	// Faxes is how many faxes are sent successfully. Default DefaultFaxes.
	Faxes int
	// Kills is how many times Caddy is killed with SIGKILL and restarted. Default DefaultKills;
	// negative means none.
	Kills int
	// Seed chooses the kill moments, the downtime after each kill and the recipients' behaviour.
	// Runs with the same seed kill at the same progress points, not at the same instants.
	Seed int64
	// Concurrency is how many clients send and follow faxes at once. Default DefaultConcurrency.
	Concurrency int
	// Tick is the fax service's simulation step. Default DefaultTick.
	Tick time.Duration
	// Drain bounds the wait for webhooks after every fax was followed. Default DefaultDrain.
	Drain time.Duration
	// Dir is the work directory: Caddyfile, Caddy's log, faxhook's storage. Empty means a new
	// temporary directory, removed at the end unless the run failed (Report.Dir names it).
	Dir string
	// Faxhook holds extra lines for the global faxhook block of the Caddyfile, e.g. options a newer
	// faxhook needs to deliver to the loopback receiver. RCV in it is replaced by the receiver's URL.
	Faxhook string
	// Log, if non-nil, receives a line per kill and per phase of the run.
	Log io.Writer
}

// Report is the outcome of a run. Fax ids are sorted.
type Report struct {
	// Seed is the seed the run used.
	Seed int64
	// Faxes is how many faxes the run set out to send.
	Faxes int
	// Expected are the ids of the faxes whose send succeeded: each must produce one fax_completed.
	Expected []int64
	// Delivered are the expected faxes with at least one verified, accepted webhook.
	Delivered []int64
	// Lost are the expected faxes without any verified webhook.
	Lost []int64
	// Duplicated are the faxes with more than one accepted webhook. At-least-once delivery allows
	// them (a crash between the receiver's answer and faxhook recording it); they are reported only.
	Duplicated []int64
	// Misrouted are the faxes with a webhook at another URL than the one they asked for.
	Misrouted []int64
	// Unexpected are the faxes with a webhook that were not expected (their send looked failed).
	Unexpected []int64
	// Requests is how many webhook requests the receiver got in all.
	Requests int
	// Unverified is how many webhook requests failed signature verification or parsing.
	Unverified int
	// Kills is how many times Caddy was killed.
	Kills int
	// SendRetries is how many sends were repeated because Caddy was down or died during the call.
	SendRetries int
	// ReadRetries is how many reads of a fax were repeated because Caddy was down or died.
	ReadRetries int
	// Elapsed is the run's duration, from Caddy's first start to the end of the drain.
	Elapsed time.Duration
	// Dir is the work directory when it was kept (a failed run in a temporary directory, or
	// Options.Dir), with caddy/caddy.log in it.
	Dir string
}

// OK reports whether the run lost nothing, misrouted nothing and every webhook verified.
func (r Report) OK() bool {
	return len(r.Expected) > 0 && len(r.Lost) == 0 && len(r.Misrouted) == 0 && r.Unverified == 0
}

// Print writes a summary of the report to w.
func (r Report) Print(w io.Writer) {
	fmt.Fprintf(w, "chaos: %d faxes, %d kills of Caddy (seed %d) in %s\n", r.Faxes, r.Kills, r.Seed, r.Elapsed.Round(time.Millisecond))
	fmt.Fprintf(w, "  expected    %d faxes sent successfully (%d sends and %d reads repeated while Caddy was down)\n",
		len(r.Expected), r.SendRetries, r.ReadRetries)
	fmt.Fprintf(w, "  delivered   %d faxes with a verified webhook (%d webhook requests, %d unverified)\n", len(r.Delivered), r.Requests, r.Unverified)
	printIDs(w, "lost", r.Lost)
	printIDs(w, "duplicated", r.Duplicated)
	printIDs(w, "misrouted", r.Misrouted)
	printIDs(w, "unexpected", r.Unexpected)
	if r.Dir != "" {
		fmt.Fprintf(w, "  work dir    %s\n", r.Dir)
	}
	verdict := "OK"
	if !r.OK() {
		verdict = "FAILED"
	}
	fmt.Fprintf(w, "  result      %s\n", verdict)
}

func printIDs(w io.Writer, label string, ids []int64) {
	const show = 20
	var b strings.Builder
	for i, id := range ids {
		if i == show {
			fmt.Fprintf(&b, " …")
			break
		}
		fmt.Fprintf(&b, " %d", id)
	}
	fmt.Fprintf(w, "  %-11s %d%s\n", label, len(ids), b.String())
}

// run is the state of one run.
type run struct {
	opts   Options
	rng    *rand.Rand // drawn from only before the clients and the killer start
	rcvURL string
	client *harness.Client
	logMu  sync.Mutex

	mu       sync.Mutex
	expected map[int64]string // fax id → the webhook URL it asked for (its callback_url or the sent_url)

	sent        atomic.Int64 // successful sends
	clientsDone atomic.Bool  // every fax was sent and followed
	sendRetries atomic.Int64
	readRetries atomic.Int64
}

func (r *run) logf(format string, args ...any) {
	if r.opts.Log == nil {
		return
	}
	r.logMu.Lock()
	defer r.logMu.Unlock()
	fmt.Fprintf(r.opts.Log, format+"\n", args...)
}

// Run performs one chaos run and reports what arrived. The error is for a run that could not be
// carried out (Caddy would not start, ctx ended); lost webhooks are reported, not returned.
func Run(ctx context.Context, opts Options) (Report, error) {
	rep := &Report{}
	err := execute(ctx, withDefaults(opts), rep)
	return *rep, err
}

// execute carries out a run with opts (defaults applied) and fills rep.
func execute(ctx context.Context, opts Options, rep *Report) (err error) {
	r := &run{opts: opts, rng: rand.New(rand.NewPCG(uint64(opts.Seed), 0x6368616f73)), expected: map[int64]string{}}
	rep.Seed, rep.Faxes = opts.Seed, opts.Faxes

	bin := opts.CaddyBinary
	if bin == "" {
		if bin, err = harness.CaddyBinary(); err != nil {
			return fmt.Errorf("finding a Caddy with faxhook: %w", err)
		}
	}
	dir, temp := opts.Dir, opts.Dir == ""
	if temp {
		if dir, err = os.MkdirTemp("", "faxhook-chaos-"); err != nil {
			return fmt.Errorf("creating the work directory: %w", err)
		}
	}
	defer func() {
		if temp && err == nil && rep.OK() {
			os.RemoveAll(dir)
		} else {
			rep.Dir = dir
		}
	}()

	svc := faxapp.New(faxapp.Config{APIKey: key, APISecret: secret, Tick: opts.Tick, Seed: opts.Seed & 0xffff})
	faxURL, stopFax, err := harness.Serve(svc)
	if err != nil {
		return fmt.Errorf("starting the fax service: %w", err)
	}
	defer stopFax()
	rcv := receiver.New(receiver.Config{Token: token})
	var stopRcv func()
	if r.rcvURL, stopRcv, err = harness.Serve(rcv); err != nil {
		return fmt.Errorf("starting the receiver: %w", err)
	}
	defer stopRcv()

	admin, err := harness.FreeAddr()
	if err != nil {
		return err
	}
	site, err := harness.FreeAddr()
	if err != nil {
		return err
	}
	caddyfile := r.caddyfile(admin, site, faxURL, filepath.Join(dir, "storage"))
	start := time.Now()
	caddy, err := harness.StartCaddy(bin, filepath.Join(dir, "caddy"), admin, caddyfile, "FAXHOOK_TOKEN="+token)
	if err != nil {
		return fmt.Errorf("starting caddy: %w", err)
	}
	defer func() {
		if serr := caddy.Stop(); serr != nil && err == nil {
			err = fmt.Errorf("stopping caddy: %w", serr)
		}
	}()
	r.client = &harness.Client{Base: "http://" + site + "/v2.1", Key: key, Secret: secret,
		HTTP: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: opts.Concurrency}}}
	r.logf("chaos: caddy up at %s, fax service %s, receiver %s, work dir %s", site, faxURL, r.rcvURL, dir)

	// Clients and the killer run together; the killer restarts Caddy after each kill.
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
		if rep.Kills, killErr = r.killer(cctx, caddy, kills); killErr != nil {
			cancel()
		}
	}()
	wg.Wait()
	if err := cmp.Or(killErr, clientErr); err != nil {
		rep.Elapsed = time.Since(start)
		return fmt.Errorf("after %d kills: %w; caddy log:\n%s", rep.Kills, err, caddy.Tail(30))
	}

	// Caddy is up for good: let faxhook see every expected fax in its final state.
	r.logf("chaos: %d faxes followed, %d kills done; reading every fax through caddy once more", r.sent.Load(), rep.Kills)
	if err := r.sweep(ctx); err != nil {
		return fmt.Errorf("final read of every fax: %w", err)
	}
	r.drain(ctx, rcv)
	rep.Elapsed = time.Since(start)
	r.fill(rep, rcv.Deliveries())
	return ctx.Err()
}

func withDefaults(o Options) Options {
	if o.Faxes <= 0 {
		o.Faxes = DefaultFaxes
	}
	if o.Kills == 0 {
		o.Kills = DefaultKills
	}
	if o.Kills < 0 {
		o.Kills = 0
	}
	if o.Concurrency <= 0 {
		o.Concurrency = DefaultConcurrency
	}
	if o.Tick <= 0 {
		o.Tick = DefaultTick
	}
	if o.Drain <= 0 {
		o.Drain = DefaultDrain
	}
	return o
}

func (r *run) caddyfile(admin, site, faxURL, storage string) string {
	return fmt.Sprintf(`{
	admin %s
	auto_https off
	faxhook {
		storage %s
		token {env.FAXHOOK_TOKEN}
		sent_url %s/sent
		retry_schedule %s
		timeout 5s
		allow_private 127.0.0.0/8
		%s
	}
}

http://%s {
	handle /v2.1/* {
		faxhook
		reverse_proxy %s
	}
}
`, admin, storage, r.rcvURL, RetrySchedule, strings.ReplaceAll(r.opts.Faxhook, "RCV", r.rcvURL), site, faxURL)
}

// recipients are the fax service's scripted behaviours: success, busy once, always busy (failure),
// failure on page 2. Each fax gets one at random.
var recipients = []string{"+15550100000", "+15550100001", "+15550100002", "+15550100003"}

// plan draws every fax's recipient and page count.
func (r *run) plan() []faxPlan {
	plans := make([]faxPlan, r.opts.Faxes)
	for i := range plans {
		plans[i] = faxPlan{to: recipients[r.rng.IntN(len(recipients))], pages: 1 + r.rng.IntN(2)}
	}
	return plans
}

// clients sends and follows the planned faxes with opts.Concurrency goroutines.
func (r *run) clients(ctx context.Context, plans []faxPlan) error {
	return harness.ForEach(ctx, len(plans), r.opts.Concurrency, func(i int) error { return r.one(ctx, i, plans[i]) })
}

// faxPlan is what one fax is.
type faxPlan struct {
	to    string
	pages int
}

// one sends fax number i through Caddy until a send succeeds, then follows it until it is final.
func (r *run) one(ctx context.Context, i int, p faxPlan) error {
	o := harness.SendOptions{To: []string{p.to}, File: faxapp.PDF(p.pages)}
	want := r.rcvURL + "/sent"
	if i%2 == 0 {
		o.CallbackURL = fmt.Sprintf("%s/cb/%d", r.rcvURL, i)
		o.CallbackAfterFile = i%4 == 0
		want = o.CallbackURL
	}
	var id int64
	for try := 0; ; try++ {
		var err error
		if id, err = r.client.Send(ctx, o); err == nil {
			break
		}
		if err := r.pause(ctx, try); err != nil {
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

// follow reads fax id through Caddy, repeating failed reads, until it is final (untilFinal) or
// once.
func (r *run) follow(ctx context.Context, id int64, untilFinal bool) error {
	for try := 0; ; try++ {
		s, err := r.client.Status(ctx, id)
		if err == nil && (!untilFinal || s == "success" || s == "failure" || s == "partialsuccess") {
			return nil
		}
		if err == nil {
			try = 0
		} else {
			r.readRetries.Add(1)
		}
		if err := r.pause(ctx, try); err != nil {
			return fmt.Errorf("following fax %d: %w", id, err)
		}
	}
}

// pause waits before the next call: one tick after a good answer, longer (up to 200ms) after each
// failure in a row.
func (r *run) pause(ctx context.Context, failures int) error {
	d := r.opts.Tick << min(failures, 4)
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(min(d, 200*time.Millisecond)):
		return nil
	}
}

// kill is one planned kill of Caddy.
type kill struct {
	at    int64         // when this many faxes have been sent successfully,
	delay time.Duration // and this much later, Caddy is killed;
	down  time.Duration // it stays down this long before the restart
}

// killPlan draws opts.Kills kills at progress points spread over 5%–95% of the faxes, each after a
// delay of up to five ticks and with a downtime of up to 250ms, in progress order.
func (r *run) killPlan() []kill {
	ks := make([]kill, r.opts.Kills)
	for k := range ks {
		ks[k] = kill{
			at:    int64(float64(r.opts.Faxes) * (0.05 + 0.9*r.rng.Float64())),
			delay: time.Duration(r.rng.Int64N(int64(5*r.opts.Tick) + 1)),
			down:  time.Duration(r.rng.Int64N(int64(250*time.Millisecond) + 1)),
		}
	}
	slices.SortFunc(ks, func(a, b kill) int { return cmp.Compare(a.at, b.at) })
	return ks
}

// killer carries out the kills, restarting Caddy after each. Kills whose point the clients never
// reach (they finished first) still happen, while the last webhooks are being delivered. It
// returns how many kills it made.
func (r *run) killer(ctx context.Context, caddy *harness.Caddy, ks []kill) (int, error) {
	n := len(ks)
	for k, kl := range ks {
		for r.sent.Load() < kl.at && !r.clientsDone.Load() {
			select {
			case <-ctx.Done():
				return k, ctx.Err()
			case <-time.After(2 * time.Millisecond):
			}
		}
		select {
		case <-ctx.Done():
			return k, ctx.Err()
		case <-time.After(kl.delay):
		}
		at := r.sent.Load()
		caddy.Kill()
		time.Sleep(kl.down)
		t0 := time.Now()
		if err := caddy.Start(); err != nil {
			return k + 1, fmt.Errorf("restarting caddy after kill %d: %w", k+1, err)
		}
		r.logf("chaos: kill %d/%d at %d/%d faxes sent; down %s, restarted in %s", k+1, n, at, r.opts.Faxes,
			kl.down.Round(time.Millisecond), time.Since(t0).Round(time.Millisecond))
	}
	return n, nil
}

// sweep reads every expected fax through Caddy once, with opts.Concurrency readers.
func (r *run) sweep(ctx context.Context) error {
	r.mu.Lock()
	ids := make([]int64, 0, len(r.expected))
	for id := range r.expected {
		ids = append(ids, id)
	}
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

// drain waits until every expected fax has a verified webhook or opts.Drain has passed, then a
// little longer so that late duplicates are counted.
func (r *run) drain(ctx context.Context, rcv *receiver.Receiver) {
	r.mu.Lock()
	want := len(r.expected)
	r.mu.Unlock()
	deadline := time.Now().Add(r.opts.Drain)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if n := r.countDelivered(rcv.Deliveries()); n >= want {
			r.logf("chaos: all %d expected webhooks arrived", want)
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	select {
	case <-ctx.Done():
	case <-time.After(time.Second):
	}
}

// countDelivered counts the expected faxes with at least one accepted, verified webhook.
func (r *run) countDelivered(ds []receiver.Delivery) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	seen := map[int64]bool{}
	for _, d := range ds {
		if id, ok := accepted(d); ok {
			if _, exp := r.expected[id]; exp {
				seen[id] = true
			}
		}
	}
	return len(seen)
}

// accepted returns the fax id of a verified delivery the receiver accepted.
func accepted(d receiver.Delivery) (int64, bool) {
	if !d.Verified || d.Status < 200 || d.Status > 299 || d.Fields["event_type"] != "fax_completed" {
		return 0, false
	}
	var f struct {
		ID int64 `json:"id"`
	}
	if err := json.Unmarshal([]byte(d.Fields["fax"]), &f); err != nil || f.ID == 0 {
		return 0, false
	}
	return f.ID, true
}

// fill counts the deliveries into rep.
func (r *run) fill(rep *Report, ds []receiver.Delivery) {
	r.mu.Lock()
	defer r.mu.Unlock()
	rep.Requests = len(ds)
	count := map[int64]int{}
	misrouted := map[int64]bool{}
	for _, d := range ds {
		id, ok := accepted(d)
		if !ok {
			if !d.Verified {
				rep.Unverified++
			}
			continue
		}
		count[id]++
		if want, exp := r.expected[id]; exp && d.URL != want {
			misrouted[id] = true
		}
	}
	for id := range r.expected {
		rep.Expected = append(rep.Expected, id)
		if count[id] > 0 {
			rep.Delivered = append(rep.Delivered, id)
		} else {
			rep.Lost = append(rep.Lost, id)
		}
	}
	for id, n := range count {
		if n > 1 {
			rep.Duplicated = append(rep.Duplicated, id)
		}
		if _, exp := r.expected[id]; !exp {
			rep.Unexpected = append(rep.Unexpected, id)
		}
	}
	for id := range misrouted {
		rep.Misrouted = append(rep.Misrouted, id)
	}
	for _, s := range [][]int64{rep.Expected, rep.Delivered, rep.Lost, rep.Duplicated, rep.Misrouted, rep.Unexpected} {
		slices.Sort(s)
	}
	rep.SendRetries = int(r.sendRetries.Load())
	rep.ReadRetries = int(r.readRetries.Load())
}
