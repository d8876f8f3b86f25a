// Command qbench measures faxhook's webhook queue against baselines in the same run: enqueue
// throughput against raw Badger writes (a), signed deliveries/s against a plain net/http client
// (b), peak RSS and restart-to-first-delivery over a million pending jobs (c), and healthy
// destinations' p99 latency with half the destinations hanging (d), each with sync_writes on and
// off; and, on request, the PostgreSQL store of a fleet against Badger (e): signed deliveries/s
// and p99 enqueue-to-delivery latency. See package examples/qbench.
//
//	go run ./examples/cmd/qbench                                   # the default size, a few minutes
//	go run ./examples/cmd/qbench -cases a,b -rounds 1 -duration 300ms -jobs 500
//	go run ./examples/cmd/qbench -cases c -pending 100000
//	go run ./examples/cmd/qbench -cases e                          # needs PostgreSQL's server binaries
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"

	"github.com/faxhook/caddy-faxhook/examples/qbench"
)

func main() {
	qbench.ChildMain() // case (c) re-executes this binary as its child

	var o qbench.Options
	cases := flag.String("cases", "a,b,c,d", "cases to run: a (enqueue), b (deliveries), c (restart over pending jobs), d (latency with hanging destinations), e (PostgreSQL store vs Badger; needs PostgreSQL's server binaries)")
	flag.DurationVar(&o.Duration, "duration", 0, "length of one enqueue run in (a) (default 2s)")
	flag.IntVar(&o.Rounds, "rounds", 0, "rounds of each throughput pair in (a) and (b), alternating order (default 5)")
	flag.IntVar(&o.Jobs, "jobs", 0, "jobs per delivery run in (b) (default 3000)")
	flag.IntVar(&o.FleetJobs, "fleet-jobs", 0, "jobs per delivery run in (e), on each store (default 10000)")
	flag.IntVar(&o.Pending, "pending", 0, "future jobs in the store of (c) (default 1000000)")
	flag.IntVar(&o.Rate, "rate", 0, "arrival rate of (d) in jobs/s (default 200)")
	flag.DurationVar(&o.LatencyDuration, "latency-duration", 0, "enqueueing time per run of (d) (default 5s)")
	flag.DurationVar(&o.HangTimeout, "hang-timeout", 0, "sender timeout in (d): how long a hanging destination holds a worker (default 2s)")
	flag.IntVar(&o.Dests, "dests", 0, "receivers in (b) and (d); in (d) half of them hang (default 4)")
	flag.IntVar(&o.Workers, "workers", 0, "dispatcher workers in (b) and (d) (default 16)")
	flag.IntVar(&o.PerHost, "per-host", 0, "dispatcher per-host limit in (b) and (d) (default 4)")
	flag.StringVar(&o.Dir, "dir", "", "parent of the temporary stores (default the system's temp directory)")
	strict := flag.Bool("strict", false, "exit 2 when a goal is missed")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
	quiet := flag.Bool("q", false, "no progress lines on stderr")
	flag.Parse()
	for _, c := range strings.Split(*cases, ",") {
		if c = strings.TrimSpace(c); c != "" {
			o.Cases = append(o.Cases, c)
		}
	}
	if !*quiet {
		o.Progress = os.Stderr
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "qbench:", err)
			os.Exit(1)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(os.Stderr, "qbench:", err)
			os.Exit(1)
		}
		defer pprof.StopCPUProfile()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	rep, err := qbench.Run(ctx, o)
	if rep != nil && len(rep.Rows) > 0 {
		rep.Print(os.Stdout)
	}
	pprof.StopCPUProfile()
	if err != nil {
		fmt.Fprintln(os.Stderr, "qbench:", err)
		os.Exit(1)
	}
	if *strict && !rep.AllMet() {
		os.Exit(2)
	}
}
