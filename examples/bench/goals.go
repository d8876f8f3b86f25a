package bench

import (
	"context"
	"fmt"
	"io"
	"math"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/faxhook/caddy-faxhook/examples/qbench"
)

// GoalOptions configures RunGoals: every benchmark goal of the README at a modest size, one
// table. Zero fields take the defaults noted.
type GoalOptions struct {
	// CaddyBinary is the Caddy with the faxhook plugin. Default: harness.CaddyBinary().
	CaddyBinary string
	// Proxy configures the proxy-path runs; its Paths are always (a) and (b), the paths with a
	// goal. Default: 3s runs, 4 rounds, under the default GC budget.
	Proxy Options
	// Queue configures the queue benchmark (examples/qbench), all four cases. Default: qbench's
	// defaults with 3 rounds of 1s in (a), so 1,000,000 pending jobs in (c).
	Queue qbench.Options
	// Memory configures the memory mode; SkipMemory leaves it out.
	Memory     MemOptions
	SkipMemory bool
	// Progress, if not nil, receives every benchmark's progress lines.
	Progress io.Writer
}

// GoalRow is one line of the goal table.
type GoalRow struct {
	// Goal names what is measured; Budget states the goal.
	Goal, Budget string
	// Measured is the figure, formatted.
	Measured string
	// Verdict is "met", "MISSED" or "SUSPICIOUS" (met only because faxhook came out cheaper
	// than bare Caddy); "-" for a row reported without a budget.
	Verdict string
	// Command reproduces the figure at full size.
	Command string
}

// GoalReport is the outcome of RunGoals.
type GoalReport struct {
	Rows []GoalRow
	// GCBudget is the proxy runs' GC budget (Options.GCBudget).
	GCBudget string
	// LoadBefore and LoadAfter are the 1-minute load averages at the start and the end.
	LoadBefore, LoadAfter float64
	// Elapsed is how long it took.
	Elapsed time.Duration
}

// RunGoals runs the proxy benchmark on paths (a) and (b), the queue benchmark's four cases and
// the memory mode, one after the other, and collects one row per goal. Rows gathered before an
// error are returned with it.
func RunGoals(ctx context.Context, o GoalOptions) (rep GoalReport, err error) {
	start := time.Now()
	rep.LoadBefore = loadAvg()
	defer func() { rep.Elapsed, rep.LoadAfter = time.Since(start), loadAvg() }()
	progress := func(f string, a ...any) {
		if o.Progress != nil {
			fmt.Fprintf(o.Progress, f+"\n", a...)
		}
	}

	p := o.Proxy
	p.CaddyBinary, p.Paths, p.Progress, p.AA = o.CaddyBinary, []Path{PathOther, PathGet}, o.Progress, false
	if p.Duration == 0 {
		p.Duration = 3 * time.Second
	}
	if p.Rounds == 0 {
		p.Rounds = 4
	}
	progress("== proxy path: (a) and (b), %s x %d rounds", p.Duration, p.Rounds)
	pr, err := Run(ctx, p)
	if err != nil {
		return rep, fmt.Errorf("proxy benchmark: %w", err)
	}
	rep.GCBudget = pr.Options.GCBudget()
	for _, g := range pr.Goals {
		what := map[Path]string{PathOther: "non-fax path (a)", PathGet: "one fax as JSON (b)"}[g.Path]
		rep.Rows = append(rep.Rows, GoalRow{
			Goal: "proxy CPU per request faxhook/bare, " + what, Budget: fmt.Sprintf("≤ %.2f", g.Limit),
			Measured: fmt.Sprintf("%.3f", g.Value), Verdict: g.Verdict(),
			Command: "go run ./examples/cmd/bench -caddy ./caddy -paths a,b",
		})
	}

	q := o.Queue
	q.Cases, q.Progress = []string{"a", "b", "c", "d"}, o.Progress
	if q.Rounds == 0 {
		q.Rounds = 3
	}
	if q.Duration == 0 {
		q.Duration = time.Second
	}
	progress("== queue: qbench cases a, b, c, d")
	qr, err := qbench.Run(ctx, q)
	if qr != nil {
		for _, r := range qr.Rows {
			rep.Rows = append(rep.Rows, queueRow(r))
		}
	}
	if err != nil {
		return rep, fmt.Errorf("queue benchmark: %w", err)
	}

	if o.SkipMemory {
		return rep, nil
	}
	m := o.Memory
	m.CaddyBinary, m.Progress = o.CaddyBinary, o.Progress
	progress("== memory under large input")
	mr, err := RunMemory(ctx, m)
	if err != nil {
		return rep, fmt.Errorf("memory benchmark: %w", err)
	}
	for _, r := range mr.Results {
		if r.Case == MemBaseline {
			continue
		}
		verdict := "met"
		if r.Outcome != OutcomeCompleted || r.Completed != 1 {
			verdict = "MISSED"
		}
		rep.Rows = append(rep.Rows, GoalRow{
			Goal:     "memory: " + r.What,
			Budget:   fmt.Sprintf("completes under %s RSS", describeSize(int(mr.Options.MaxRSS))),
			Measured: fmt.Sprintf("%s, x%.2f baseline, %s", describeSize(int(r.PeakRSS)), r.Ratio, r.Outcome),
			Verdict:  verdict, Command: "go run ./examples/cmd/bench -caddy ./caddy -memory",
		})
	}
	return rep, nil
}

// queueRow turns a row of the queue benchmark into a goal row.
func queueRow(r qbench.Row) GoalRow {
	measured := fmt.Sprintf("%.2f", r.Ratio)
	if math.IsNaN(r.Ratio) {
		measured = fmt.Sprintf("%.2f", r.Faxhook)
	}
	verdict := "met"
	if !r.Met {
		verdict = "MISSED"
	}
	sync := "off"
	if r.Sync {
		sync = "on"
	}
	return GoalRow{
		Goal: fmt.Sprintf("queue (%s) %s, sync_writes %s", r.Case, r.Measure, sync), Budget: r.Goal,
		Measured: measured, Verdict: verdict, Command: "go run ./examples/cmd/qbench -cases " + r.Case,
	}
}

// Met reports whether every row met its goal (a SUSPICIOUS row does not count as met).
func (r GoalReport) Met() bool {
	for _, row := range r.Rows {
		if row.Verdict != "met" {
			return false
		}
	}
	return len(r.Rows) > 0
}

// Print writes the goal table.
func (r GoalReport) Print(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "faxhook benchmark goals, modest sizes; took %s; load average %.2f before, %.2f after\n",
		r.Elapsed.Round(time.Second), r.LoadBefore, r.LoadAfter)
	if r.GCBudget != "" {
		fmt.Fprintf(&b, "proxy rows: both Caddys under %s\n", r.GCBudget)
	}
	b.WriteString("ratios are faxhook over a baseline measured in the same run; SUSPICIOUS = faxhook cheaper than bare Caddy\n\n")
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprint(tw, "goal\tbudget\tmeasured\tverdict\tcommand (full size)\n")
	for _, row := range r.Rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", row.Goal, row.Budget, row.Measured, row.Verdict, row.Command)
	}
	tw.Flush()
	_, err := io.WriteString(w, b.String())
	return err
}
