// Command faxapp runs the simulated Phaxio v2.1 fax service of package faxapp on a local address.
//
//	faxapp -listen 127.0.0.1:8090 -key test-key -secret test-secret -tick 200ms -seed 1
//
// It prints "faxapp listening on http://ADDR" once it accepts connections and stops on SIGINT or
// SIGTERM.
package main

import (
	"flag"
	"fmt"
	"log"
	"net"

	"github.com/faxhook/caddy-faxhook/examples/faxapp"
	"github.com/faxhook/caddy-faxhook/examples/simserve"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:8090", "address to listen on")
	key := flag.String("key", "test-key", "API key (HTTP Basic user name)")
	secret := flag.String("secret", "test-secret", "API secret (HTTP Basic password)")
	tick := flag.Duration("tick", faxapp.DefaultTick, "duration of one simulation step")
	seed := flag.Int64("seed", 1, "seed for ids, numbers and simulated outcomes")
	flag.Parse()
	sim := faxapp.New(faxapp.Config{APIKey: *key, APISecret: *secret, Tick: *tick, Seed: *seed})
	err := simserve.Run(*listen, sim, func(a net.Addr) string { return fmt.Sprintf("faxapp listening on http://%s", a) })
	if err != nil {
		log.Fatalf("faxapp: %v", err)
	}
}
