// Command faxapp runs the simulated Phaxio v2.1 fax service of package faxapp on a local address.
//
//	faxapp -listen 127.0.0.1:8090 -key test-key -secret test-secret -tick 200ms -seed 1
//
// It prints "faxapp listening on http://ADDR" once it accepts connections and stops on SIGINT or
// SIGTERM.
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
)

func main() {
	listen := flag.String("listen", "127.0.0.1:8090", "address to listen on")
	key := flag.String("key", "test-key", "API key (HTTP Basic user name)")
	secret := flag.String("secret", "test-secret", "API secret (HTTP Basic password)")
	tick := flag.Duration("tick", faxapp.DefaultTick, "duration of one simulation step")
	seed := flag.Int64("seed", 1, "seed for ids, numbers and simulated outcomes")
	flag.Parse()
	if err := run(*listen, faxapp.Config{APIKey: *key, APISecret: *secret, Tick: *tick, Seed: *seed}); err != nil {
		log.Fatalf("faxapp: %v", err)
	}
}

func run(addr string, cfg faxapp.Config) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: faxapp.New(cfg), ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	fmt.Printf("faxapp listening on http://%s\n", ln.Addr())
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdown); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
