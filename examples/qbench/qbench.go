// Package qbench measures faxhook's webhook queue (package queue) against baselines measured in
// the same run, with Badger's sync_writes on and off:
//
//	(a) enqueue: jobs/s through tx.Enqueue, one job per transaction and 64 per transaction (the
//	    tracker's batches), against raw Badger transactions writing values of the same size;
//	    goal ≥ 0.5 of the baseline.
//	(b) delivery: signed deliveries/s through Dispatcher + httpsend to loopback receivers,
//	    against a plain net/http client posting the same bodies to the same receivers with the
//	    same concurrency, after one uncounted warm-up pair; goal ≥ 0.7.
//	(c) restart: a store holding -pending jobs due in the future and one due now is reopened in
//	    a fresh process (this binary, re-executed): peak RSS (VmHWM) and time from exec to the
//	    receiver getting the due job; goals ≤ 300 MB and ≤ 5 s.
//	(d) isolation: p99 enqueue-to-delivery latency of healthy destinations while half the
//	    destinations hang until the sender's timeout, against the same load with none hanging;
//	    goal ≤ 2×.
//
// Throughputs are medians over rounds run in alternating order (ABBA). Every store lives in a
// temporary directory that is removed afterwards. The command is examples/cmd/qbench.
package qbench

import (
	"context"
	"fmt"
	"io"
	"math"
	"runtime"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// Options sizes a run. Zero fields take the defaults noted.
type Options struct {
	// Cases lists the cases to run, from "a", "b", "c", "d", "e". Default a to d; e (the
	// PostgreSQL store of a fleet) needs PostgreSQL's server binaries.
	Cases []string
	// Duration is the length of one enqueue run in (a). Default 2s.
	Duration time.Duration
	// Rounds is how many times each throughput pair of (a) and (b) runs. Default 5.
	Rounds int
	// Jobs is how many jobs one delivery run of (b) delivers. Default 3000.
	Jobs int
	// FleetJobs is how many jobs one delivery run of (e) delivers, on each store. Default
	// 10,000: a run of 3,000 took Badger about 0.13 s, of which the pipeline's filling and
	// draining (the first round before any attempt, the last outcomes after them) is a large
	// share, and Badger's figure spread over 15,000–26,000 jobs/s in one run of five rounds.
	FleetJobs int
	// Pending is how many future jobs the store of (c) holds. Default 1,000,000.
	Pending int
	// Rate is the arrival rate of (d), in jobs per second. Default 200.
	Rate int
	// LatencyDuration is how long (d) enqueues, per run. Default 5s.
	LatencyDuration time.Duration
	// HangTimeout is the sender's timeout in (d), how long a hanging destination holds a worker.
	// Default 2s.
	HangTimeout time.Duration
	// Dests is how many receivers (b) and (d) use; in (d) the second half hang. Default 4.
	Dests int
	// Workers and PerHost configure the dispatcher in (b) and (d). Default 16 and 4.
	Workers, PerHost int
	// Dir is where temporary stores go. Default os.TempDir().
	Dir string
	// Progress, if set, receives a line per step.
	Progress io.Writer
}

func (o *Options) defaults() {
	if len(o.Cases) == 0 {
		o.Cases = []string{"a", "b", "c", "d"}
	}
	if o.Duration <= 0 {
		o.Duration = 2 * time.Second
	}
	if o.Rounds <= 0 {
		o.Rounds = 5
	}
	if o.Jobs <= 0 {
		o.Jobs = 3000
	}
	if o.FleetJobs <= 0 {
		o.FleetJobs = 10_000
	}
	if o.Pending <= 0 {
		o.Pending = 1_000_000
	}
	if o.Rate <= 0 {
		o.Rate = 200
	}
	if o.LatencyDuration <= 0 {
		o.LatencyDuration = 5 * time.Second
	}
	if o.HangTimeout <= 0 {
		o.HangTimeout = 2 * time.Second
	}
	if o.Dests < 2 {
		o.Dests = 4
	}
	if o.Workers <= 0 {
		o.Workers = 16
	}
	if o.PerHost <= 0 {
		o.PerHost = 4
	}
}

// Row is one line of the report.
type Row struct {
	// Case is "a" to "d".
	Case string
	// Measure says what was measured, with its unit.
	Measure string
	// Sync is the sync_writes setting of the run.
	Sync bool
	// Faxhook is the figure measured through the queue.
	Faxhook float64
	// Baseline is the figure of the baseline, NaN when the case has none.
	Baseline float64
	// Ratio is Faxhook/Baseline, NaN when there is no baseline.
	Ratio float64
	// Goal states the goal, e.g. "ratio ≥ 0.5" or "≤ 300".
	Goal string
	// Met reports whether the goal was met.
	Met bool
	// Note adds detail (spread over rounds, samples, child timings).
	Note string
}

// Report is the outcome of Run.
type Report struct {
	// Rows hold the figures, in case order.
	Rows []Row
	// Options are the options the run used, defaults filled in.
	Options Options
	// Elapsed is how long the run took.
	Elapsed time.Duration
}

// Run runs the cases of o and reports their figures. It stops early, with ctx's error, when ctx
// ends.
func Run(ctx context.Context, o Options) (*Report, error) {
	o.defaults()
	r := &Report{Options: o}
	start := time.Now()
	progress := func(f string, a ...any) {
		if o.Progress != nil {
			fmt.Fprintf(o.Progress, f+"\n", a...)
		}
	}
	for _, c := range o.Cases {
		var rows []Row
		var err error
		switch c {
		case "a":
			rows, err = caseEnqueue(ctx, o, progress)
		case "b":
			rows, err = caseDeliver(ctx, o, progress)
		case "c":
			rows, err = caseRestart(ctx, o, progress)
		case "d":
			rows, err = caseLatency(ctx, o, progress)
		case "e":
			rows, err = caseFleet(ctx, o, progress)
		default:
			err = fmt.Errorf("unknown case %q (want a, b, c, d or e)", c)
		}
		r.Rows = append(r.Rows, rows...)
		if err != nil {
			return r, fmt.Errorf("case %s: %w", c, err)
		}
	}
	r.Elapsed = time.Since(start)
	return r, nil
}

var syncModes = []bool{true, false}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

// abba runs a and b rounds times, alternating which goes first, and returns their medians and
// the spread (min–max) of each.
func abba(rounds int, a, b func() (float64, error)) (ma, mb float64, note string, err error) {
	var as, bs []float64
	for i := range rounds {
		first, second := a, b
		if i%2 == 1 {
			first, second = b, a
		}
		x, err := first()
		if err != nil {
			return 0, 0, "", err
		}
		y, err := second()
		if err != nil {
			return 0, 0, "", err
		}
		if i%2 == 1 {
			x, y = y, x
		}
		as, bs = append(as, x), append(bs, y)
	}
	return median(as), median(bs), fmt.Sprintf("%d rounds; faxhook %s, baseline %s", rounds, spread(as), spread(bs)), nil
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func spread(v []float64) string {
	return fmt.Sprintf("%s–%s", num(slices.Min(v)), num(slices.Max(v)))
}

func caseEnqueue(ctx context.Context, o Options, progress func(string, ...any)) ([]Row, error) {
	var rows []Row
	for _, sync := range syncModes {
		for _, batch := range []int{1, 64} {
			progress("(a) enqueue, %d job(s) per transaction, sync_writes %s: %d rounds of %s each", batch, onOff(sync), o.Rounds, o.Duration)
			q, raw, note, err := abba(o.Rounds,
				func() (float64, error) { return enqueueRun(ctx, o.Dir, sync, false, batch, o.Duration) },
				func() (float64, error) { return enqueueRun(ctx, o.Dir, sync, true, batch, o.Duration) })
			if err != nil {
				return rows, err
			}
			rows = append(rows, ratioRow("a", fmt.Sprintf("enqueue, %d job/txn (jobs/s)", batch), sync, q, raw, 0.5, note))
		}
	}
	return rows, nil
}

func ratioRow(c, measure string, sync bool, faxhook, baseline, goal float64, note string) Row {
	ratio := faxhook / baseline
	return Row{Case: c, Measure: measure, Sync: sync, Faxhook: faxhook, Baseline: baseline, Ratio: ratio,
		Goal: fmt.Sprintf("ratio ≥ %.1f", goal), Met: ratio >= goal, Note: note}
}

func caseDeliver(ctx context.Context, o Options, progress func(string, ...any)) ([]Row, error) {
	rcvs := make([]*receiver, o.Dests)
	urls := make([]string, o.Dests)
	for i := range rcvs {
		rcvs[i] = newReceiver(false, nil)
		urls[i] = rcvs[i].URL()
	}
	defer func() {
		for _, r := range rcvs {
			r.Close()
		}
	}()
	jobs := deliveryJobs(o.Jobs, urls)
	// One pair first, not counted: the process's first runs pay for growing its heap (fresh
	// pages) and warming caches, and would weigh on whichever case ran first.
	progress("(b) warm-up: one delivery run and one plain-client run, not counted")
	if _, _, err := deliverQueue(ctx, o.Dir, false, jobs, o.Workers, o.PerHost); err != nil {
		return nil, err
	}
	if _, _, err := deliverPlain(ctx, jobs, urls, o.PerHost); err != nil {
		return nil, err
	}
	var rows []Row
	for _, sync := range syncModes {
		progress("(b) %d signed deliveries to %d receivers, %d workers (%d per host), sync_writes %s: %d rounds",
			o.Jobs, o.Dests, o.Workers, o.PerHost, onOff(sync), o.Rounds)
		var qCPU, pCPU []float64 // µs per delivery
		q, plain, note, err := abba(o.Rounds,
			func() (float64, error) {
				r, cpu, err := deliverQueue(ctx, o.Dir, sync, jobs, o.Workers, o.PerHost)
				qCPU = append(qCPU, float64(cpu.Nanoseconds())/1e3)
				return r, err
			},
			func() (float64, error) {
				r, cpu, err := deliverPlain(ctx, jobs, urls, o.PerHost)
				pCPU = append(pCPU, float64(cpu.Nanoseconds())/1e3)
				return r, err
			})
		if err != nil {
			return rows, err
		}
		note += fmt.Sprintf("; CPU per delivery %.0f vs %.0f µs (whole process, receivers included)", median(qCPU), median(pCPU))
		rows = append(rows, ratioRow("b", "signed deliveries/s vs plain client", sync, q, plain, 0.7, note))
	}
	return rows, nil
}

func caseRestart(ctx context.Context, o Options, progress func(string, ...any)) ([]Row, error) {
	dir, cleanup, err := tempDir(o.Dir, "qbench-restart-")
	if err != nil {
		return nil, err
	}
	defer cleanup()
	hits := make(chan time.Time, 16)
	rcv := newReceiver(false, func(_ string, at time.Time) {
		select {
		case hits <- at:
		default:
		}
	})
	defer rcv.Close()
	progress("(c) storing %d pending jobs due in the future and 1 due now", o.Pending)
	took, err := fillPending(ctx, dir, o.Pending, rcv.URL(), progress)
	if err != nil {
		return nil, err
	}
	progress("(c) stored in %s (%.0f jobs/s, sync_writes off, 2 writers, 256 per transaction)", took.Round(time.Millisecond), float64(o.Pending)/took.Seconds())
	var rows []Row
	for i, sync := range syncModes {
		if i > 0 { // the previous child delivered the due job: store another
			if err := addDue(dir, rcv.URL(), i); err != nil {
				return rows, err
			}
		}
		progress("(c) restart in a fresh process, sync_writes %s", onOff(sync))
		res, err := restartOnce(ctx, dir, sync, hits)
		if err != nil {
			return rows, err
		}
		mb := float64(res.child.VmHWMKB) / 1024
		sec := res.firstHit.Seconds()
		note := fmt.Sprintf("open %.0f ms; first outcome stored %.0f ms after exec; RSS after %.0f MB; fill %s",
			res.child.OpenMS, res.child.DeliveryMS, float64(res.child.VmRSSKB)/1024, took.Round(time.Second))
		rows = append(rows,
			Row{Case: "c", Measure: fmt.Sprintf("peak RSS, %s pending (MB)", num(float64(o.Pending))), Sync: sync,
				Faxhook: mb, Baseline: math.NaN(), Ratio: math.NaN(), Goal: "≤ 300", Met: mb > 0 && mb <= 300},
			Row{Case: "c", Measure: "restart → first delivery (s)", Sync: sync,
				Faxhook: sec, Baseline: math.NaN(), Ratio: math.NaN(), Goal: "≤ 5", Met: sec <= 5, Note: note})
	}
	return rows, nil
}

// addDue opens the store of (c) briefly to add another job due now.
func addDue(dir, url string, seq int) error {
	st, err := openQueue(dir)
	if err != nil {
		return err
	}
	if err := addDueJob(st, url, seq); err != nil {
		st.Close()
		return fmt.Errorf("adding a due job: %w", err)
	}
	return st.Close()
}

func caseLatency(ctx context.Context, o Options, progress func(string, ...any)) ([]Row, error) {
	var rows []Row
	for _, sync := range syncModes {
		var res [2]latencyResult
		for i, hang := range []bool{false, true} {
			progress("(d) %d jobs/s for %s over %d receivers, %d hanging (timeout %s), sync_writes %s",
				o.Rate, o.LatencyDuration, o.Dests, map[bool]int{false: 0, true: o.Dests / 2}[hang], o.HangTimeout, onOff(sync))
			r, err := latencyRun(ctx, o.Dir, sync, hang, o)
			if err != nil {
				return rows, err
			}
			res[i] = r
		}
		none, half := res[0], res[1]
		// The event-to-delivery goal of the issue on destination health (issue 17): the time
		// from the enqueue (a fax's state change recorded) to the receiver, at the arrival rate,
		// when every destination answers. It is the figure faxhook_event_delivery_seconds
		// reports in production.
		rows = append(rows, Row{Case: "d", Measure: fmt.Sprintf("p99 enqueue-to-delivery (ms) at %d jobs/s, none hanging", o.Rate),
			Sync: sync, Faxhook: ms(none.p99), Baseline: math.NaN(), Ratio: math.NaN(), Goal: "≤ 20",
			Met: none.p99 <= 20*time.Millisecond, Note: fmt.Sprintf("p50 %.1f ms; %d samples", ms(none.p50), none.n)})
		ratio := half.p99.Seconds() / none.p99.Seconds()
		rows = append(rows, Row{Case: "d", Measure: fmt.Sprintf("healthy p99 (ms), %d of %d hanging vs none", o.Dests/2, o.Dests),
			Sync: sync, Faxhook: ms(half.p99), Baseline: ms(none.p99), Ratio: ratio, Goal: "ratio ≤ 2", Met: ratio <= 2,
			Note: fmt.Sprintf("p50 %.1f vs %.1f ms; %d vs %d samples; %d attempts hung until the timeout",
				ms(half.p50), ms(none.p50), half.n, none.n, half.hung)})
	}
	return rows, nil
}

// Print writes the report as a table, with one line per row and the goals.
func (r *Report) Print(w io.Writer) {
	o := r.Options
	fmt.Fprintf(w, "faxhook queue benchmark — %d CPUs, %s/%s, %s; workers %d, per host %d; took %s\n\n",
		runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, runtime.Version(), o.Workers, o.PerHost, r.Elapsed.Round(time.Second))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "case\tmeasure\tsync\tfaxhook\tbaseline\tratio\tgoal\tmet\tnote")
	for _, row := range r.Rows {
		met := "yes"
		if !row.Met {
			met = "NO"
		}
		ratio := "-"
		if !math.IsNaN(row.Ratio) {
			ratio = fmt.Sprintf("%.2f", row.Ratio)
		}
		base := "-"
		if !math.IsNaN(row.Baseline) {
			base = num(row.Baseline)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", row.Case, row.Measure, onOff(row.Sync),
			num(row.Faxhook), base, ratio, row.Goal, met, row.Note)
	}
	tw.Flush()
}

// AllMet reports whether every row met its goal.
func (r *Report) AllMet() bool {
	for _, row := range r.Rows {
		if !row.Met {
			return false
		}
	}
	return len(r.Rows) > 0
}

// num formats a figure: thousands separated for large ones, two decimals for small ones.
func num(v float64) string {
	switch {
	case math.IsNaN(v):
		return "-"
	case math.Abs(v) >= 1000:
		s := fmt.Sprintf("%.0f", v)
		var b strings.Builder
		for i, c := range s {
			if i > 0 && (len(s)-i)%3 == 0 && s[i-1] != '-' {
				b.WriteByte(',')
			}
			b.WriteRune(c)
		}
		return b.String()
	case math.Abs(v) >= 10:
		return fmt.Sprintf("%.0f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}

// caseFleet measures the PostgreSQL store of a fleet against Badger on the same machine, in the
// same run: signed deliveries per second of one dispatcher over each (Badger with sync_writes
// on, PostgreSQL fsyncing its commits), and the enqueue-to-delivery latency at Rate jobs/s over
// PostgreSQL, one job per transaction, as the tracker enqueues them.
func caseFleet(ctx context.Context, o Options, progress func(string, ...any)) ([]Row, error) {
	srv, err := startPostgres()
	if err != nil {
		return nil, err
	}
	defer srv.Stop()
	rcvs := make([]*receiver, o.Dests)
	urls := make([]string, o.Dests)
	for i := range rcvs {
		rcvs[i] = newReceiver(false, nil)
		urls[i] = rcvs[i].URL()
	}
	defer func() {
		for _, r := range rcvs {
			r.Close()
		}
	}()
	jobs := deliveryJobs(o.FleetJobs, urls)
	pg, bdg := postgresStore(srv), badgerStore(o.Dir, "qbench-fleet-", true)
	progress("(e) warm-up: one delivery run on each store, not counted")
	for _, open := range []opener{pg, bdg} {
		if _, _, err := deliverQueueOn(ctx, open, jobs, o.Workers, o.PerHost); err != nil {
			return nil, err
		}
	}
	progress("(e) %d signed deliveries to %d receivers, %d workers (%d per host), PostgreSQL vs Badger (sync_writes on): %d rounds",
		o.FleetJobs, o.Dests, o.Workers, o.PerHost, o.Rounds)
	q, b, note, err := abba(o.Rounds,
		func() (float64, error) {
			r, _, err := deliverQueueOn(ctx, pg, jobs, o.Workers, o.PerHost)
			return r, err
		},
		func() (float64, error) {
			r, _, err := deliverQueueOn(ctx, bdg, jobs, o.Workers, o.PerHost)
			return r, err
		})
	if err != nil {
		return nil, err
	}
	rows := []Row{ratioRow("e", "signed deliveries/s, PostgreSQL vs Badger", true, q, b, 0.5, note)}
	progress("(e) %d jobs/s for %s over %d receivers on PostgreSQL", o.Rate, o.LatencyDuration, o.Dests)
	lat, err := latencyRunOn(ctx, pg, false, o)
	if err != nil {
		return rows, err
	}
	rows = append(rows, Row{Case: "e", Measure: fmt.Sprintf("p99 enqueue-to-delivery (ms) at %d jobs/s, PostgreSQL", o.Rate),
		Sync: true, Faxhook: ms(lat.p99), Baseline: math.NaN(), Ratio: math.NaN(), Goal: "≤ 50", Met: ms(lat.p99) <= 50,
		Note: fmt.Sprintf("p50 %.1f ms; %d samples", ms(lat.p50), lat.n)})
	return rows, nil
}
