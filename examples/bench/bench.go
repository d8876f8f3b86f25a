// Package bench measures what faxhook costs on the proxy path. It starts, on loopback, a static
// Phaxio-style fax API (an in-process Go server with precomputed bodies), Caddy with
// reverse_proxy alone ("bare") and Caddy with faxhook in front of the same reverse_proxy
// ("faxhook"), then drives both with a closed-loop load generator for a fixed time per run, each
// worker sending its requests to the two Caddys in turn (or, with Options.Sequential, one Caddy
// after the other in ABBA order), on four paths:
//
//	(a) GET /health             a non-fax path, small text
//	(b) GET /v2.1/faxes/{id}    one completed fax, ~1 KB of JSON
//	(c) GET /v2.1/faxes         a list of 100 faxes, ~100 KB of JSON
//	(d) POST /v2.1/faxes        multipart send with callback_url and a 1 MiB file part
//
// Both Caddys run under the same GC budget: the harness sets GOGC and GOMEMLIMIT (default off and
// 256MiB) in both processes' environment. Under Go's default GOGC=100 a process collects
// whenever its heap has grown by its live heap; faxhook's live heap (Badger's caches) is several
// times bare Caddy's, so it would collect several times less often for the same allocations and
// could cost less CPU per request than bare Caddy while doing more work. With GOGC off both
// collect when their heap reaches the same limit, so each pays for its own allocations and its
// live heap within the same memory.
//
// The Report gives, per path and Caddy, the median over rounds of throughput, p50/p99 latency,
// CPU time, GC cycles and allocation per request, the faxhook/bare ratios, the peak RSS of each
// Caddy and whether the goals on CPU per request were met. A ratio that has faxhook cheaper or
// faster than bare Caddy is flagged as suspicious: faxhook adds work, so such a ratio is noise
// or an artefact, never a result. The command is examples/cmd/bench.
package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/faxhook/caddy-faxhook/examples/harness"
)

// Path is one benchmarked API call, named by its letter in the issue: "a" to "d".
type Path string

// The benchmarked paths.
const (
	// PathOther is (a): GET /health, a path faxhook does not observe.
	PathOther Path = "a"
	// PathGet is (b): GET /v2.1/faxes/{id}, one fax as JSON.
	PathGet Path = "b"
	// PathList is (c): GET /v2.1/faxes, a list of 100 faxes as JSON.
	PathList Path = "c"
	// PathSend is (d): POST /v2.1/faxes, multipart with callback_url and a 1 MiB file part.
	PathSend Path = "d"
)

// AllPaths are the paths in report order.
var AllPaths = []Path{PathOther, PathGet, PathList, PathSend}

// Request returns the request line of the path, e.g. "GET /v2.1/faxes".
func (p Path) Request() string {
	switch p {
	case PathOther:
		return "GET /health"
	case PathGet:
		return "GET /v2.1/faxes/" + strconv.Itoa(getFaxID)
	case PathList:
		return "GET /v2.1/faxes"
	case PathSend:
		return "POST /v2.1/faxes"
	}
	return "?"
}

// ParsePaths parses a comma-separated list of path letters such as "a,b,c,d".
func ParsePaths(s string) ([]Path, error) {
	var out []Path
	for _, f := range strings.Split(s, ",") {
		p := Path(strings.TrimSpace(f))
		if p == "" {
			continue
		}
		if !slices.Contains(AllPaths, p) {
			return nil, fmt.Errorf("unknown path %q (want a, b, c or d)", p)
		}
		if !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("no paths")
	}
	return out, nil
}

// Options configures a benchmark Run. Zero fields take the defaults.
type Options struct {
	// Duration is the measured time of each run (one path through one Caddy). Default 5s.
	Duration time.Duration
	// Warmup is run before each measured run and not recorded, to open connections and warm
	// caches. Default Duration/10, between 100ms and 1s.
	Warmup time.Duration
	// Rounds is how many times each path is run through each Caddy; the report takes medians
	// over rounds. Default 3.
	Rounds int
	// Sequential runs the two Caddys one after the other in each round (bare first in odd
	// rounds, faxhook first in even ones: ABBA) instead of at once. By default each closed-loop
	// worker sends its requests to the two Caddys in turn, so both serve the same load in the
	// same window and other load on the machine falls on both alike: CPU per request is then
	// comparable even on a busy machine, while throughputs are equal by construction.
	// Sequential runs compare throughput too, but on a shared machine one Caddy's run may get
	// more CPU than the other's.
	Sequential bool
	// Concurrency is the number of closed-loop client workers. Default 8.
	Concurrency int
	// CaddyBinary is the Caddy with the faxhook plugin. Default: harness.CaddyBinary().
	CaddyBinary string
	// Paths are the paths to run, in report order. Default AllPaths.
	Paths []Path
	// FaxhookOptions are extra lines for the faxhook global option block (e.g. "sync_writes
	// off"), for experiments; the defaults are production's.
	FaxhookOptions []string
	// GOGC and GOMemLimit are set as GOGC and GOMEMLIMIT in both Caddys' environment, so both
	// run under the same GC budget. Defaults "off" and "256MiB": each Caddy collects when its
	// heap reaches 256 MiB, several times per run. "default" leaves a variable to the
	// environment and to Caddy (which sets GOMEMLIMIT from the cgroup or the machine's memory).
	GOGC, GOMemLimit string
	// AA runs the bare configuration in both slots (an A/A test): the ratios then show the
	// harness's own noise and bias on this machine, which a real run's ratios must be read
	// against.
	AA bool
	// Keep keeps the work directory (Caddyfiles, logs, faxhook storage); see Report.WorkDir.
	Keep bool
	// Progress, if not nil, receives a line per run as the benchmark goes.
	Progress io.Writer
}

// The default GC budget of both Caddys; see Options.GOGC.
const (
	DefaultGOGC       = "off"
	DefaultGOMemLimit = "256MiB"
)

// gcEnv returns the environment that gives a Caddy the GC budget of o.
func (o *Options) gcEnv() []string {
	var env []string
	if o.GOGC != "default" {
		env = append(env, "GOGC="+o.GOGC)
	}
	if o.GOMemLimit != "default" {
		env = append(env, "GOMEMLIMIT="+o.GOMemLimit)
	}
	return env
}

func (o *Options) defaults() error {
	if o.Duration == 0 {
		o.Duration = 5 * time.Second
	}
	if o.Warmup == 0 {
		o.Warmup = min(max(o.Duration/10, 100*time.Millisecond), time.Second)
	}
	if o.Rounds == 0 {
		o.Rounds = 3
	}
	if o.Concurrency == 0 {
		o.Concurrency = 8
	}
	if len(o.Paths) == 0 {
		o.Paths = AllPaths
	}
	if o.GOGC == "" {
		o.GOGC = DefaultGOGC
	}
	if o.GOMemLimit == "" {
		o.GOMemLimit = DefaultGOMemLimit
	}
	switch {
	case o.Duration < 0 || o.Warmup < 0:
		return errors.New("negative duration")
	case o.Rounds < 0:
		return errors.New("negative rounds")
	case o.Concurrency < 0:
		return errors.New("negative concurrency")
	}
	for _, p := range o.Paths {
		if !slices.Contains(AllPaths, p) {
			return fmt.Errorf("unknown path %q", p)
		}
	}
	return nil
}

// RunStats is one measured run of one path through one Caddy.
type RunStats struct {
	// Throughput is successful responses per second.
	Throughput float64
	// P50 and P99 are latency percentiles of the successful requests (client side: request
	// written to body read).
	P50, P99 time.Duration
	// Requests counts successful responses; Errors counts failed requests.
	Requests, Errors int64
	// CPUPerRequest is the Caddy's CPU time (user + system) from the start of the window until
	// it went idle after it, divided by Requests: the cost per request including work deferred
	// past the window (faxhook's observation backlog).
	CPUPerRequest time.Duration
	// Drain is how long the Caddy stayed busy after the window.
	Drain time.Duration
	// Dropped counts the observations faxhook dropped because its backlog was full (always 0
	// for bare Caddy).
	Dropped int64
	// GCCycles counts the Caddy's completed GC cycles over the window and the drain, and
	// AllocPerRequest is the heap it allocated meanwhile per request (-1: unknown).
	GCCycles, AllocPerRequest int64
}

// VariantStats summarizes one path through one Caddy over all rounds.
type VariantStats struct {
	// Throughput, P50, P99, CPUPerRequest, Drain, GCPer1k (GC cycles per 1,000 requests) and
	// AllocPerRequest (bytes) are medians over rounds.
	Throughput           float64
	P50, P99             time.Duration
	CPUPerRequest, Drain time.Duration
	GCPer1k              float64
	AllocPerRequest      int64
	// Requests, Errors and Dropped are totals over rounds.
	Requests, Errors, Dropped int64
	// FirstError describes the first failed request, if any.
	FirstError string
	// Rounds are the individual runs in round order.
	Rounds []RunStats
}

// PathReport is the result for one path.
type PathReport struct {
	// Path is the path's letter.
	Path Path
	// ResponseBytes is the size of the upstream's response body (for (d), of the request body).
	ResponseBytes int
	// Bare and Faxhook are the two Caddys' results.
	Bare, Faxhook VariantStats
	// Ratio is the median over rounds of faxhook/bare throughput, each round's runs paired.
	Ratio float64
	// RoundRatios are the per-round throughput ratios.
	RoundRatios []float64
	// AddedP50 and AddedP99 are the medians over rounds of faxhook minus bare latency.
	AddedP50, AddedP99 time.Duration
	// CPUCost is the median over rounds of faxhook's CPU time per request over bare's: what
	// faxhook adds to the proxy path, 1.00 for nothing. Unlike Ratio it hardly depends on what
	// else runs on the machine; the goals are about it. RoundCPUCosts are the rounds' values.
	CPUCost       float64
	RoundCPUCosts []float64
	// Suspicious says why a ratio has faxhook cheaper or faster than bare Caddy (CPUCost
	// below 1, or Ratio above 1); empty otherwise. faxhook adds work to every request, so such a
	// ratio is noise or an artefact (compare the GC cycles, run an A/A test), not a result.
	Suspicious string
}

// Goal is one overhead budget and whether the run met it: faxhook's CPU time per request over
// bare Caddy's on a path, at most Limit.
type Goal struct {
	// Path is the path the goal is about.
	Path Path
	// Value is the measured PathReport.CPUCost and Limit the budget.
	Value, Limit float64
	// Met reports whether Value ≤ Limit.
	Met bool
	// Suspicious is the path's PathReport.Suspicious: a value below 1 meets the budget but is
	// not a result to report.
	Suspicious string
}

// Report is the outcome of a Run.
type Report struct {
	// Options are the effective options (defaults filled in).
	Options Options
	// CPUs is the number of CPUs the load generator, both Caddys and the upstream share.
	CPUs int
	// LoadBefore and LoadAfter are the machine's 1-minute load average before the Caddys
	// started and at the end (-1: unknown). A load well above zero before the start means other
	// processes competed for the CPUs and the numbers are noisier.
	LoadBefore, LoadAfter float64
	// Paths are the per-path results, in Options.Paths order.
	Paths []PathReport
	// BareMemory and FaxhookMemory are the two Caddys' memory at the end of the run.
	BareMemory, FaxhookMemory Memory
	// Goals are the overhead budgets for the paths that were run.
	Goals []Goal
	// WorkDir is the work directory, when Options.Keep kept it.
	WorkDir string
}

// GoalLimits are the budgets on faxhook's CPU time per request over bare Caddy's: 1.03 on a
// path faxhook does not observe, 1.10 on one fax as JSON. The list (c) and the 1 MiB send (d)
// are reported without a budget.
var GoalLimits = map[Path]float64{PathOther: 1.03, PathGet: 1.10}

// settleLimit bounds the wait for the Caddys to go idle before and after a run.
const settleLimit = 60 * time.Second

// Run starts the upstream and both Caddys, runs the benchmark and stops everything again. It
// fails if a Caddy does not start or if a path does not answer correctly through either Caddy
// before the measurement; failed requests during the measurement are counted, not fatal.
func Run(ctx context.Context, o Options) (rep Report, err error) {
	if err := o.defaults(); err != nil {
		return Report{}, err
	}
	if o.CaddyBinary == "" {
		if o.CaddyBinary, err = harness.CaddyBinary(); err != nil {
			return Report{}, err
		}
	}
	rep = Report{Options: o, CPUs: runtime.NumCPU(), LoadBefore: loadAvg()}
	progress := func(format string, args ...any) {
		if o.Progress != nil {
			fmt.Fprintf(o.Progress, format+"\n", args...)
		}
	}

	dir, err := os.MkdirTemp("", "faxhook-bench-")
	if err != nil {
		return Report{}, err
	}
	if o.Keep {
		rep.WorkDir = dir
	} else {
		defer os.RemoveAll(dir)
	}

	up := newUpstream()
	upURL, stopUp, err := harness.Serve(up.handler())
	if err != nil {
		return Report{}, err
	}
	defer stopUp()
	sinkURL, stopSink, err := harness.Serve(sink())
	if err != nil {
		return Report{}, err
	}
	defer stopSink()

	var caddys [2]*caddyProc
	defer func() {
		for _, c := range caddys {
			if c != nil {
				c.Stop()
			}
		}
	}()
	for _, v := range []Variant{Bare, Faxhook} {
		cfg := v
		if o.AA {
			cfg = Bare
		}
		c, err := startCaddy(o.CaddyBinary, filepath.Join(dir, v.String()), cfg, upURL, sinkURL, o.FaxhookOptions, o.gcEnv())
		if err != nil {
			return Report{}, err
		}
		caddys[v] = c
		progress("%-7s caddy  %s  pid %d", v, c.site, c.pid)
	}
	progress("upstream       %s", upURL)

	tr := &http.Transport{
		Proxy:               nil,
		MaxIdleConns:        4 * o.Concurrency,
		MaxIdleConnsPerHost: 2 * o.Concurrency,
		IdleConnTimeout:     30 * time.Second,
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}

	body, ct := sendBody(sinkURL + "/callback?customer=42")
	targets := func(site string) map[Path]*target {
		return map[Path]*target{
			PathOther: {method: http.MethodGet, url: site + "/health", check: exactBody(len(up.health))},
			PathGet:   {method: http.MethodGet, url: site + "/v2.1/faxes/" + strconv.Itoa(getFaxID), check: exactBody(len(up.getBody))},
			PathList:  {method: http.MethodGet, url: site + "/v2.1/faxes", check: exactBody(len(up.list))},
			PathSend:  {method: http.MethodPost, url: site + "/v2.1/faxes", contentType: ct, body: body, check: sendQueued},
		}
	}
	tgt := [2]map[Path]*target{targets(caddys[Bare].site), targets(caddys[Faxhook].site)}
	sizes := map[Path]int{PathOther: len(up.health), PathGet: len(up.getBody), PathList: len(up.list), PathSend: len(body)}

	// Every path must answer correctly through both Caddys before anything is measured.
	for _, p := range o.Paths {
		for _, v := range []Variant{Bare, Faxhook} {
			w := &worker{client: client, t: tgt[v][p], buf: make([]byte, 32<<10)}
			if w.tmpl, err = templateRequest(ctx, w.t); err != nil {
				return Report{}, err
			}
			if _, err := w.once(); err != nil {
				return Report{}, fmt.Errorf("(%s) %s through %s caddy: %w; log:\n%s", p, p.Request(), v, err, caddys[v].Tail(20))
			}
		}
	}

	// Under GOGC=off a heap grows to GOMEMLIMIT before its first collection, into pages the
	// process touches for the first time, which costs far more than reusing them (up to tens of
	// µs a page on some VMs). Each Caddy is driven until it has collected once, so that no
	// measured run pays for growing its heap.
	for _, v := range []Variant{Bare, Faxhook} {
		n, took, err := primeHeap(ctx, client, tgt[v][PathOther], caddys[v].Admin, o.Concurrency)
		if err != nil {
			return Report{}, err
		}
		progress("%-7s caddy  heap primed: %d GC cycle(s) after %s of load", v, n, took.Round(100*time.Millisecond))
	}

	runs := make(map[Path]*[2][]runResult, len(o.Paths))
	for _, p := range o.Paths {
		runs[p] = new([2][]runResult)
	}
	pids := []int{caddys[Bare].pid, caddys[Faxhook].pid}
	// measure runs path p through the Caddys vs at once (loadEach) and records a run of each.
	measure := func(r int, p Path, vs []Variant) error {
		// Start from quiet processes: work left over from the previous run (faxhook's
		// observation backlog) must not be charged to this one.
		settle(ctx, pids, settleLimit)
		ts := make([]*target, len(vs))
		for i, v := range vs {
			ts[i] = tgt[v][p]
		}
		if o.Warmup > 0 {
			if _, err := loadEach(ctx, client, ts, o.Concurrency, o.Warmup); err != nil {
				return err
			}
		}
		gs0, gsErr0 := make([]goStats, len(vs)), make([]error, len(vs))
		cpu0, drops0, vpids := make([]time.Duration, len(vs)), make([]int64, len(vs)), make([]int, len(vs))
		for i, v := range vs {
			c := caddys[v]
			gs0[i], gsErr0[i] = readGoStats(c.Admin)
			cpu0[i], _ = cpuTime(c.pid)
			drops0[i], vpids[i] = c.drops(), c.pid
		}
		rs, err := loadEach(ctx, client, ts, o.Concurrency, o.Duration)
		if err != nil {
			return err
		}
		drain := settle(ctx, vpids, settleLimit)
		for i, v := range vs {
			c, res := caddys[v], rs[i]
			cpu1, _ := cpuTime(c.pid)
			res.cpu, res.drain, res.dropped = cpu1-cpu0[i], drain, c.drops()-drops0[i]
			res.gcCycles, res.allocBytes = -1, -1
			if gs1, err := readGoStats(c.Admin); err == nil && gsErr0[i] == nil {
				res.gcCycles, res.allocBytes = gs1.gcCycles-gs0[i].gcCycles, gs1.allocBytes-gs0[i].allocBytes
			}
			runs[p][v] = append(runs[p][v], res)
			progress("round %d/%d  (%s) %-22s %-7s %7.0f req/s  p50 %-9s p99 %-9s cpu/req %-6s gc %-4d alloc/req %-9s drain %-6s dropped %d errors %d",
				r+1, o.Rounds, p, p.Request(), v, res.throughput(),
				fmtDur(percentile(res.latencies, 0.50)), fmtDur(percentile(res.latencies, 0.99)),
				fmtMicros(res.cpuPerRequest()), res.gcCycles, describeSize(int(res.allocPerRequest())),
				res.drain.Round(10*time.Millisecond), res.dropped, res.errors)
		}
		tr.CloseIdleConnections() // each run opens its own connections during warmup
		return nil
	}
	for r := range o.Rounds {
		order := []Variant{Bare, Faxhook}
		if r%2 == 1 {
			order = []Variant{Faxhook, Bare}
		}
		for _, p := range o.Paths {
			if !o.Sequential {
				if err := measure(r, p, order); err != nil {
					return Report{}, err
				}
				continue
			}
			for _, v := range order {
				if err := measure(r, p, []Variant{v}); err != nil {
					return Report{}, err
				}
			}
		}
	}

	for _, p := range o.Paths {
		pr := PathReport{Path: p, ResponseBytes: sizes[p]}
		pr.Bare = summarize(runs[p][Bare])
		pr.Faxhook = summarize(runs[p][Faxhook])
		var d50, d99 []time.Duration
		for i := range runs[p][Bare] {
			b, f := pr.Bare.Rounds[i], pr.Faxhook.Rounds[i]
			ratio, cost := 0.0, 0.0
			if b.Throughput > 0 {
				ratio = f.Throughput / b.Throughput
			}
			if b.CPUPerRequest > 0 {
				cost = float64(f.CPUPerRequest) / float64(b.CPUPerRequest)
			}
			pr.RoundRatios = append(pr.RoundRatios, ratio)
			pr.RoundCPUCosts = append(pr.RoundCPUCosts, cost)
			d50 = append(d50, f.P50-b.P50)
			d99 = append(d99, f.P99-b.P99)
		}
		pr.Ratio = median(pr.RoundRatios)
		pr.AddedP50, pr.AddedP99 = median(d50), median(d99)
		pr.CPUCost = median(pr.RoundCPUCosts)
		if !o.AA {
			// Run at once, the two Caddys get the same requests: their throughputs are equal
			// by construction, and only the CPU cost says anything.
			ratio := pr.Ratio
			if !o.Sequential {
				ratio = 0
			}
			pr.Suspicious = suspicious(pr.CPUCost, ratio)
		}
		rep.Paths = append(rep.Paths, pr)

		if lim, ok := GoalLimits[p]; ok && o.Rounds > 0 {
			rep.Goals = append(rep.Goals, Goal{Path: p, Value: pr.CPUCost, Limit: lim,
				Met: pr.CPUCost > 0 && pr.CPUCost <= lim, Suspicious: pr.Suspicious})
		}
	}
	rep.LoadAfter = loadAvg()
	rep.BareMemory, _ = readMemory(caddys[Bare].pid)
	rep.FaxhookMemory, _ = readMemory(caddys[Faxhook].pid)
	return rep, nil
}

// primeLimit bounds primeHeap.
const primeLimit = 60 * time.Second

// primeHeap drives t until the Caddy with admin endpoint admin has completed a GC cycle, or for
// primeLimit, and returns the cycles and the time taken.
func primeHeap(ctx context.Context, client *http.Client, t *target, admin string, workers int) (int64, time.Duration, error) {
	start := time.Now()
	gs0, err := readGoStats(admin)
	if err != nil {
		return 0, 0, fmt.Errorf("reading the Go metrics of caddy %s: %w", admin, err)
	}
	for time.Since(start) < primeLimit {
		if _, err := load(ctx, client, t, workers, 500*time.Millisecond); err != nil {
			return 0, 0, err
		}
		gs, err := readGoStats(admin)
		if err != nil {
			return 0, 0, err
		}
		if n := gs.gcCycles - gs0.gcCycles; n > 0 {
			return n, time.Since(start), nil
		}
	}
	return 0, time.Since(start), nil
}

// suspicious says why a path's ratios have faxhook cheaper or faster than bare Caddy, or
// returns "" if they do not. faxhook does all that bare Caddy does and more, so a CPU cost below
// 1 or a throughput ratio above 1 is noise (another process took CPU from one Caddy's run), an
// artefact of unequal GC budgets, or a broken measurement.
func suspicious(cpuCost, ratio float64) string {
	var why []string
	if cpuCost > 0 && cpuCost < 1 {
		why = append(why, fmt.Sprintf("faxhook used less CPU per request than bare (x%.2f)", cpuCost))
	}
	if ratio > 1 {
		why = append(why, fmt.Sprintf("faxhook served more requests per second than bare (%.2f)", ratio))
	}
	return strings.Join(why, "; ")
}

// templateRequest builds the request a worker copies for every request it makes.
func templateRequest(ctx context.Context, t *target) (*http.Request, error) {
	r, err := http.NewRequestWithContext(ctx, t.method, t.url, nil)
	if err != nil {
		return nil, err
	}
	if t.body != nil {
		r.ContentLength = int64(len(t.body))
		body := t.body
		r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
		r.Header.Set("Content-Type", t.contentType)
	}
	r.Header.Set("User-Agent", "faxhook-bench")
	r.SetBasicAuth("bench-key", "bench-secret")
	return r, nil
}

// exactBody accepts a 200 whose body has exactly n bytes.
func exactBody(n int) func(int, int64, []byte) error {
	return func(status int, got int64, _ []byte) error {
		if status != http.StatusOK {
			return fmt.Errorf("status %d", status)
		}
		if got != int64(n) {
			return fmt.Errorf("body of %d bytes, want %d", got, n)
		}
		return nil
	}
}

// sendQueued accepts the upstream's answer to a send.
func sendQueued(status int, _ int64, head []byte) error {
	if status != http.StatusOK {
		return fmt.Errorf("status %d: %q", status, head)
	}
	const want = `{"success":true,"message":"Fax queued for sending","data":{"id":`
	if !strings.HasPrefix(string(head), want) {
		return fmt.Errorf("unexpected send response %q", head)
	}
	return nil
}

func summarize(rs []runResult) VariantStats {
	var s VariantStats
	var tp []float64
	var p50, p99, cpu, drain []time.Duration
	var gc, alloc []float64
	for _, r := range rs {
		st := RunStats{
			Throughput:      r.throughput(),
			P50:             percentile(r.latencies, 0.50),
			P99:             percentile(r.latencies, 0.99),
			Requests:        r.requests,
			Errors:          r.errors,
			CPUPerRequest:   r.cpuPerRequest(),
			Drain:           r.drain,
			Dropped:         r.dropped,
			GCCycles:        r.gcCycles,
			AllocPerRequest: r.allocPerRequest(),
		}
		if r.gcCycles >= 0 && r.requests > 0 {
			gc = append(gc, float64(r.gcCycles)*1000/float64(r.requests))
			alloc = append(alloc, float64(st.AllocPerRequest))
		}
		s.Rounds = append(s.Rounds, st)
		s.Requests += r.requests
		s.Errors += r.errors
		s.Dropped += r.dropped
		cpu = append(cpu, st.CPUPerRequest)
		drain = append(drain, st.Drain)
		if s.FirstError == "" {
			s.FirstError = r.firstErr
		}
		tp = append(tp, st.Throughput)
		p50 = append(p50, st.P50)
		p99 = append(p99, st.P99)
	}
	s.Throughput, s.P50, s.P99 = median(tp), median(p50), median(p99)
	s.CPUPerRequest, s.Drain = median(cpu), median(drain)
	s.GCPer1k, s.AllocPerRequest = -1, -1
	if len(gc) > 0 {
		s.GCPer1k, s.AllocPerRequest = median(gc), int64(median(alloc))
	}
	return s
}

// median returns the median of xs (the mean of the middle two for an even count), 0 if empty.
func median[T float64 | time.Duration](xs []T) T {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}
