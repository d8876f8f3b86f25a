package bench

import (
	"fmt"
	"io"
	"runtime"
	"strings"
	"text/tabwriter"
	"time"
)

// fmtDur formats a latency in milliseconds with three decimals.
func fmtDur(d time.Duration) string {
	return fmt.Sprintf("%.3fms", float64(d)/float64(time.Millisecond))
}

// fmtMicros formats a small duration in microseconds.
func fmtMicros(d time.Duration) string {
	return fmt.Sprintf("%.0fµs", float64(d)/float64(time.Microsecond))
}

// fmtDelta formats a latency difference with its sign.
func fmtDelta(d time.Duration) string {
	return fmt.Sprintf("%+.3fms", float64(d)/float64(time.Millisecond))
}

func fmtMem(m Memory) string {
	if m.PID == 0 || m.PeakRSS == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%s (pid %d, now %s)", describeSize(int(m.PeakRSS)), m.PID, describeSize(int(m.RSS)))
}

// fmtGC formats GC cycles per 1,000 requests (negative: unknown).
func fmtGC(x float64) string {
	if x < 0 {
		return "?"
	}
	return fmt.Sprintf("%.2f", x)
}

// fmtAlloc formats bytes allocated per request (negative: unknown).
func fmtAlloc(n int64) string {
	if n < 0 {
		return "?"
	}
	return describeSize(int(n))
}

// GCBudget describes the GC budget both Caddys ran under, e.g. "GOGC=off GOMEMLIMIT=256MiB".
func (o Options) GCBudget() string {
	f := func(name, v string) string {
		if v == "default" {
			return name + " from the environment/Caddy"
		}
		return name + "=" + v
	}
	return f("GOGC", o.GOGC) + " " + f("GOMEMLIMIT", o.GOMemLimit)
}

// Verdict is a goal's verdict for a table: "met", "MISSED", or "SUSPICIOUS" when the value
// meets the budget only by having faxhook cheaper than bare Caddy.
func (g Goal) Verdict() string {
	switch {
	case !g.Met:
		return "MISSED"
	case g.Suspicious != "":
		return "SUSPICIOUS"
	}
	return "met"
}

// Print writes the report as a table: per path the two Caddys' median throughput, latency, CPU,
// GC cycles and allocation per request, the faxhook/bare ratios, then the goals and the Caddys'
// peak RSS.
func (r Report) Print(w io.Writer) error {
	o := r.Options
	var b strings.Builder
	if o.AA {
		b.WriteString("A/A RUN: both slots run bare Caddy; the \"faxhook\" rows are a second bare Caddy.\n")
	}
	mode := "both Caddys at once, each worker taking them in turn"
	if o.Sequential {
		mode = "the Caddys one after the other in ABBA order"
	}
	fmt.Fprintf(&b, "faxhook proxy-path benchmark: %s per run after %s warmup, %d round(s), %d closed-loop workers,\n%s\n",
		o.Duration, o.Warmup, o.Rounds, o.Concurrency, mode)
	fmt.Fprintf(&b, "GC budget of both Caddys, set in their environment: %s\n", o.GCBudget())
	fmt.Fprintf(&b, "machine: %d CPUs (GOMAXPROCS %d) shared by the load generator, both Caddys and the upstream, all on loopback;\n",
		r.CPUs, runtime.GOMAXPROCS(0))
	b.WriteString("         absolute numbers are this machine's, the faxhook/bare ratios are the result.\n")
	if r.LoadBefore >= 0 {
		fmt.Fprintf(&b, "load average (1 min): %.2f before, %.2f after", r.LoadBefore, r.LoadAfter)
		if r.LoadBefore > 0.5*float64(r.CPUs) {
			b.WriteString(" -- other processes were busy before the start: expect noise")
		}
		b.WriteString("\n")
	}
	b.WriteString("values are medians over rounds; ratio = median of the per-round faxhook/bare throughput ratios")
	if !o.Sequential {
		b.WriteString("\n(1.00 by construction when both run at once)")
	}
	b.WriteString(".\n")
	b.WriteString("cpu/req = the Caddy's CPU time from the start of the run until it went idle again, per request;\n")
	b.WriteString("gc/1k = its GC cycles per 1,000 requests and alloc/req its heap allocation per request, same span;\n")
	b.WriteString("drain = how long it stayed busy after the run; dropped = observations faxhook dropped (backlog full).\n")
	b.WriteString("in the faxhook/bare rows, cpu/req is the median of the rounds' faxhook CPU per request over bare's\n")
	b.WriteString("(x1.00 = no cost; the rounds' values on the right): the goals are about it.\n\n")

	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(tw, "path\tbody\tvariant\treq/s\tp50\tp99\tcpu/req\tgc/1k\talloc/req\tdrain\tdropped\terrors\tper-round cpu/req\t\n")
	for _, p := range r.Paths {
		row := func(name, label, size string, s VariantStats) {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%.0f\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t\t\n", name, size, label, s.Throughput,
				fmtDur(s.P50), fmtDur(s.P99), fmtMicros(s.CPUPerRequest), fmtGC(s.GCPer1k), fmtAlloc(s.AllocPerRequest),
				s.Drain.Round(10*time.Millisecond), s.Dropped, s.Errors)
		}
		row(fmt.Sprintf("(%s) %s", p.Path, p.Path.Request()), "bare", describeSize(p.ResponseBytes), p.Bare)
		row("", "faxhook", "", p.Faxhook)
		var rr []string
		for _, x := range p.RoundCPUCosts {
			rr = append(rr, fmt.Sprintf("x%.2f", x))
		}
		cpuCost := "-"
		if p.CPUCost > 0 {
			cpuCost = fmt.Sprintf("x%.2f", p.CPUCost)
		}
		fmt.Fprintf(tw, "\t\tfaxhook/bare\t%.3f\t%s\t%s\t%s\t\t\t\t\t\t%s\t\n", p.Ratio, fmtDelta(p.AddedP50), fmtDelta(p.AddedP99), cpuCost, strings.Join(rr, " "))
	}
	tw.Flush()
	var notes []string
	for _, p := range r.Paths {
		if p.Suspicious != "" {
			notes = append(notes, fmt.Sprintf("(%s) %s", p.Path, p.Suspicious))
		}
	}
	if len(notes) > 0 {
		b.WriteString("\nSUSPICIOUS: faxhook does all that bare Caddy does and more, so these ratios are noise or an artefact,\n")
		b.WriteString("not results (compare gc/1k of the two Caddys; run -aa to see this machine's noise; rerun when it is quiet):\n  ")
		b.WriteString(strings.Join(notes, "\n  ") + "\n")
	}
	var errs []string
	for _, p := range r.Paths {
		for _, v := range []struct {
			name string
			s    VariantStats
		}{{"bare", p.Bare}, {"faxhook", p.Faxhook}} {
			if v.s.FirstError != "" {
				errs = append(errs, fmt.Sprintf("(%s) %s: %d error(s), first: %s", p.Path, v.name, v.s.Errors, v.s.FirstError))
			}
		}
	}
	if len(errs) > 0 {
		b.WriteString("\nerrors:\n  " + strings.Join(errs, "\n  ") + "\n")
	}

	if len(r.Goals) > 0 {
		b.WriteString("\n")
		tw = tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
		fmt.Fprint(tw, "goal\tmeasured\tbudget\tverdict\n")
		for _, g := range r.Goals {
			fmt.Fprintf(tw, "(%s) cpu per request faxhook/bare\tx%.3f\t<= x%.2f\t%s\n", g.Path, g.Value, g.Limit, g.Verdict())
		}
		tw.Flush()
	}

	fmt.Fprintf(&b, "\npeak RSS (VmHWM)  bare caddy     %s\n", fmtMem(r.BareMemory))
	fmt.Fprintf(&b, "                  faxhook caddy  %s\n", fmtMem(r.FaxhookMemory))
	if o.GOGC == "off" {
		b.WriteString("                  (with GOGC=off each heap grows to GOMEMLIMIT before a collection: RSS shows the budget)\n")
	}
	if r.WorkDir != "" {
		fmt.Fprintf(&b, "\nwork directory kept: %s\n", r.WorkDir)
	}
	_, err := io.WriteString(w, b.String())
	return err
}
