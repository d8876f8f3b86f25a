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
	"flag"
	"fmt"
	"log"
	"net"

	"github.com/faxhook/caddy-faxhook/examples/faxapp"
	"github.com/faxhook/caddy-faxhook/examples/otherfax"
	"github.com/faxhook/caddy-faxhook/examples/simserve"
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
	sim := otherfax.New(otherfax.Config{Token: *token, Tick: *tick, Seed: *seed})
	err := simserve.Run(*listen, sim, func(a net.Addr) string { return fmt.Sprintf("otherfax listening on http://%s", a) })
	if err != nil {
		log.Fatalf("otherfax: %v", err)
	}
}
