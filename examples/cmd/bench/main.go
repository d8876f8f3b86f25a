// Command bench measures faxhook's cost on the proxy path against bare Caddy: a static fax API
// upstream, Caddy with reverse_proxy alone and Caddy with faxhook + reverse_proxy, all on
// loopback, under the same GC budget, driven by one closed-loop load generator that sends to both
// at once. It prints per path and Caddy the throughput, p50/p99 latency, CPU time, GC cycles and
// allocation per request, faxhook's CPU cost over bare's with the goals, and each Caddy's peak
// RSS. See package examples/bench.
//
// With -goals it runs every benchmark goal of the README at a modest size (proxy paths (a) and
// (b), the queue benchmark's four cases, the memory cases) and prints one table: goal, budget,
// measured value, verdict and the command that measures it at full size. It takes several
// minutes.
//
// With -memory it instead measures the peak RSS of Caddy with faxhook (inflight on, poller every
// second) handling one fax that implies very many inflight events: a 1,000-recipient fax, an
// urlencoded send with 6,000 recipients, a 1 MB status answer with 21,000 tiny recipients, each
// in a fresh Caddy and reported against a 1-recipient baseline run the same way.
//
//	go run ./examples/cmd/bench                       # builds Caddy with go build, runs a,b,c,d
//	go run ./examples/cmd/bench -caddy ./caddy -duration 5s -rounds 3 -paths b,c
//	go run ./examples/cmd/bench -caddy ./caddy -memory
//	go run ./examples/cmd/bench -caddy ./caddy -goals
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/faxhook/caddy-faxhook/examples/bench"
	"github.com/faxhook/caddy-faxhook/examples/qbench"
)

func main() {
	qbench.ChildMain() // -goals runs the queue benchmark, whose case (c) re-executes this binary

	caddyBin := flag.String("caddy", "", "Caddy binary with the faxhook plugin (default: $FAXHOOK_CADDY, else built with go build from examples/cmd/caddy)")
	duration := flag.Duration("duration", 5*time.Second, "measured time of each run")
	warmup := flag.Duration("warmup", 0, "unrecorded warmup before each run (default duration/10, 100ms to 1s)")
	rounds := flag.Int("rounds", 3, "rounds; the report takes medians over rounds")
	sequential := flag.Bool("sequential", false, "run the two Caddys one after the other (ABBA) instead of at once; compares throughput too, but is at the mercy of other load on the machine")
	concurrency := flag.Int("concurrency", 8, "closed-loop client workers")
	paths := flag.String("paths", "a,b,c,d", "paths to run: a (GET /health), b (GET /v2.1/faxes/{id}), c (GET /v2.1/faxes, 100 faxes), d (1 MiB multipart send)")
	faxhookOpts := flag.String("faxhook-opts", "", `extra lines for the faxhook global option, separated by ";" (e.g. "sync_writes off")`)
	keep := flag.Bool("keep", false, "keep the work directory (Caddyfiles, logs, faxhook storage)")
	gogc := flag.String("gogc", bench.DefaultGOGC, `GOGC of both Caddys ("default": leave it to the environment)`)
	memLimit := flag.String("gomemlimit", bench.DefaultGOMemLimit, `GOMEMLIMIT of both Caddys ("default": leave it to the environment and Caddy)`)
	aa := flag.Bool("aa", false, "A/A calibration: run bare Caddy in both slots to see the harness's noise")
	strict := flag.Bool("strict", false, "exit 2 when a goal is missed (with -goals: or suspicious)")
	quiet := flag.Bool("q", false, "no per-run progress on stderr")
	memory := flag.Bool("memory", false, "memory mode: peak RSS of faxhook with one fax implying very many inflight events (cases below), against a 1-recipient baseline")
	memCases := flag.String("memory-cases", "inflight,send,response", "memory cases after the baseline: inflight (one fax to -inflight-recipients), send (urlencoded send with -send-recipients), response (status answer with -response-recipients tiny recipients)")
	inflightN := flag.Int("inflight-recipients", 1000, "memory mode: recipients of the inflight case's fax")
	sendN := flag.Int("send-recipients", 6000, "memory mode: to values of the send case")
	responseN := flag.Int("response-recipients", 21000, "memory mode: tiny recipients in the response case's answer (21,000 make about 1 MB)")
	memTimeout := flag.Duration("memory-timeout", time.Minute, "memory mode: bound on each case")
	maxRSS := flag.Int64("memory-max-rss", 4096, "memory mode: MiB of RSS at which a case's Caddy is killed and the case reported over the limit")
	goals := flag.Bool("goals", false, "run every benchmark goal at a modest size and print one table (proxy (a),(b) with -duration 3s -rounds 4 unless set; qbench a-d; the memory cases)")
	goalsPending := flag.Int("goals-pending", 0, "goals mode: pending jobs of qbench (c) (default 1000000)")
	flag.Parse()
	set := map[string]bool{}
	flag.Visit(func(f *flag.Flag) { set[f.Name] = true })

	var extra []string
	for _, l := range strings.Split(*faxhookOpts, ";") {
		if l = strings.TrimSpace(l); l != "" {
			extra = append(extra, l)
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if *goals {
		o := bench.GoalOptions{
			CaddyBinary: *caddyBin,
			Proxy: bench.Options{Warmup: *warmup, Concurrency: *concurrency, FaxhookOptions: extra,
				GOGC: *gogc, GOMemLimit: *memLimit, Sequential: *sequential},
			Queue: qbench.Options{Pending: *goalsPending},
			Memory: bench.MemOptions{InflightRecipients: *inflightN, SendRecipients: *sendN,
				ResponseRecipients: *responseN, Timeout: *memTimeout, MaxRSS: *maxRSS << 20, FaxhookOptions: extra},
		}
		if set["duration"] {
			o.Proxy.Duration = *duration
		}
		if set["rounds"] {
			o.Proxy.Rounds = *rounds
		}
		if !*quiet {
			o.Progress = os.Stderr
		}
		rep, err := bench.RunGoals(ctx, o)
		rep.Print(os.Stdout)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		if *strict && !rep.Met() {
			os.Exit(2)
		}
		return
	}
	if *memory {
		cs, err := bench.ParseMemCases(*memCases)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		o := bench.MemOptions{
			CaddyBinary: *caddyBin, Cases: cs, InflightRecipients: *inflightN, SendRecipients: *sendN,
			ResponseRecipients: *responseN, Timeout: *memTimeout, MaxRSS: *maxRSS << 20,
			FaxhookOptions: extra, Keep: *keep,
		}
		if !*quiet {
			o.Progress = os.Stderr
		}
		rep, err := bench.RunMemory(ctx, o)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		rep.Print(os.Stdout)
		return
	}
	ps, err := bench.ParsePaths(*paths)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
	o := bench.Options{
		Duration: *duration, Warmup: *warmup, Rounds: *rounds, Concurrency: *concurrency,
		CaddyBinary: *caddyBin, Paths: ps, FaxhookOptions: extra, Keep: *keep, AA: *aa,
		GOGC: *gogc, GOMemLimit: *memLimit, Sequential: *sequential,
	}
	if !*quiet {
		o.Progress = os.Stderr
	}
	rep, err := bench.Run(ctx, o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
	rep.Print(os.Stdout)
	if *strict {
		for _, g := range rep.Goals {
			if !g.Met {
				os.Exit(2)
			}
		}
	}
}
