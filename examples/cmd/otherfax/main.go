// Command otherfax runs the simulated non-Phaxio fax service of package otherfax on a local
// address.
//
//	otherfax -listen 127.0.0.1:8091 -token test-token -tick 200ms -seed 1
//	otherfax -print-mapping
//
// It prints "otherfax listening on http://ADDR" once it accepts connections and stops on SIGINT
// or SIGTERM. -print-mapping prints the faxhook mapping for the service (Caddy JSON) and exits.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/faxhook/caddy-faxhook/examples/faxapp"
	"github.com/faxhook/caddy-faxhook/examples/otherfax"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:8091", "address to listen on")
	token := flag.String("token", "test-token", "bearer token clients must send")
	tick := flag.Duration("tick", faxapp.DefaultTick, "duration of one simulation step")
	seed := flag.Int64("seed", 1, "seed for ids and simulated outcomes")
	printMapping := flag.Bool("print-mapping", false, "print the faxhook mapping for this service and exit")
	flag.Parse()
	if *printMapping {
		fmt.Println(otherfax.ExampleMappingJSON)
		return
	}
	if err := run(*listen, otherfax.Config{Token: *token, Tick: *tick, Seed: *seed}); err != nil {
		log.Fatalf("otherfax: %v", err)
	}
}

func run(addr string, cfg otherfax.Config) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", addr, err)
	}
	srv := &http.Server{Handler: otherfax.New(cfg), ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	fmt.Printf("otherfax listening on http://%s\n", ln.Addr())
	select {
	case err := <-errc:
		return fmt.Errorf("serving: %w", err)
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdown); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("shutting down: %w", err)
	}
	return nil
}
