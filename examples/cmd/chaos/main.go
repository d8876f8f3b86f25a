// Command chaos checks faxhook's crash safety: it sends faxes through a real Caddy with the
// faxhook plugin, kills Caddy with SIGKILL at random moments and restarts it, and reports the
// webhooks lost, duplicated and misrouted, by fax id. It exits 0 when nothing was lost or
// misrouted and every webhook verified, 1 otherwise.
//
//	go run ./examples/cmd/chaos -caddy ./caddy -faxes 1000 -kills 20
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"time"

	"github.com/faxhook/caddy-faxhook/examples/chaos"
)

func main() {
	var o chaos.Options
	flag.StringVar(&o.CaddyBinary, "caddy", "", "Caddy binary with the faxhook plugin (default: $FAXHOOK_CADDY, else built with go build)")
	flag.IntVar(&o.Faxes, "faxes", chaos.DefaultFaxes, "faxes to send")
	flag.IntVar(&o.Kills, "kills", chaos.DefaultKills, "times to kill Caddy with SIGKILL")
	flag.Int64Var(&o.Seed, "seed", 0, "seed for kill moments and recipients (0: from the clock)")
	flag.IntVar(&o.Concurrency, "c", chaos.DefaultConcurrency, "clients sending and following faxes at once")
	flag.DurationVar(&o.Tick, "tick", chaos.DefaultTick, "the fax service's simulation step")
	flag.DurationVar(&o.Drain, "drain", chaos.DefaultDrain, "longest wait for outstanding webhooks at the end")
	flag.StringVar(&o.Dir, "dir", "", "work directory, kept (default: a temporary one, kept only if the run fails)")
	flag.StringVar(&o.Faxhook, "faxhook", "", "extra lines for the global faxhook block (RCV = the receiver's URL)")
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

	rep, err := chaos.Run(ctx, o)
	rep.Print(os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		os.Exit(1)
	}
	if !rep.OK() {
		os.Exit(1)
	}
}
