// Command fleet checks faxhook's fleet mode: three Caddy processes with the faxhook plugin share
// one queue in a throwaway PostgreSQL; faxes go through random instances while instances are
// killed with SIGKILL and restarted, and it reports the webhooks lost, duplicated as events,
// repeated, out of order and misrouted. With -failover it runs the leader scenario instead: the
// instance that leads the poller is killed while faxes no client reads are under way, and it
// reports how soon another instance took the lead and delivered them. It exits 0 when the run is
// OK, 1 otherwise.
//
//	go run ./examples/cmd/fleet -caddy ./caddy -faxes 200 -kills 6
//	go run ./examples/cmd/fleet -caddy ./caddy -failover
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"time"

	"github.com/faxhook/caddy-faxhook/examples/fleet"
)

func main() {
	var o fleet.Options
	flag.StringVar(&o.CaddyBinary, "caddy", "", "Caddy binary with the faxhook plugin (default: $FAXHOOK_CADDY, else built with go build)")
	flag.IntVar(&o.Instances, "instances", fleet.DefaultInstances, "Caddy processes in the fleet")
	flag.IntVar(&o.Faxes, "faxes", 0, fmt.Sprintf("faxes to send (default %d, with -failover %d)", fleet.DefaultFaxes, fleet.DefaultFailoverFaxes))
	flag.IntVar(&o.Kills, "kills", fleet.DefaultKills, "times to kill an instance with SIGKILL (ignored with -failover)")
	flag.Int64Var(&o.Seed, "seed", 0, "seed for kill moments, downtimes and recipients (0: from the clock)")
	flag.IntVar(&o.Concurrency, "c", fleet.DefaultConcurrency, "clients sending and following faxes at once")
	flag.DurationVar(&o.Tick, "tick", 0, fmt.Sprintf("the fax service's simulation step (default %s, with -failover %s)", fleet.DefaultTick, fleet.DefaultFailoverTick))
	flag.DurationVar(&o.PollInterval, "poll", fleet.DefaultPollInterval, "the poller's interval")
	flag.DurationVar(&o.Timeout, "attempt-timeout", fleet.DefaultTimeout, "faxhook's timeout of a delivery attempt (a killed instance's claims last this + 30s)")
	flag.BoolVar(&o.Inflight, "inflight", false, "also send and check transmitting_page and retry_scheduled events")
	flag.Float64Var(&o.FailRate, "fail-rate", 0, "share of webhook requests the receiver refuses (503)")
	flag.DurationVar(&o.Drain, "drain", fleet.DefaultDrain, "longest wait for the queue to drain at the end")
	flag.StringVar(&o.Dir, "dir", "", "work directory, kept (default: a temporary one, kept only if the run fails)")
	flag.StringVar(&o.Faxhook, "faxhook", "", "extra lines for the global faxhook block (RCV = the receiver's URL)")
	failover := flag.Bool("failover", false, "run the leader failover scenario instead of the chaos run")
	timeout := flag.Duration("timeout", 30*time.Minute, "give up after this long")
	quiet := flag.Bool("q", false, "print only the summary")
	flag.Parse()
	if o.Kills == 0 {
		o.Kills = -1 // Options reads 0 as the default
	}
	if o.Seed == 0 {
		o.Seed = time.Now().UnixNano() % 1_000_000
	}
	if !*quiet {
		o.Log = os.Stdout
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()

	ok, err := run(ctx, o, *failover)
	if err != nil {
		fmt.Fprintln(os.Stderr, "fleet:", err)
		os.Exit(1)
	}
	if !ok {
		os.Exit(1)
	}
}

// run carries out the chosen scenario and prints its report.
func run(ctx context.Context, o fleet.Options, failover bool) (bool, error) {
	if failover {
		rep, err := fleet.Failover(ctx, o)
		rep.Print(os.Stdout)
		return rep.OK(), err
	}
	rep, err := fleet.Run(ctx, o)
	rep.Print(os.Stdout)
	return rep.OK(), err
}
