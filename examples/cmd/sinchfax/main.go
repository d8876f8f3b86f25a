// Command sinchfax runs the simulated Sinch Fax API v3 of package sinchfax on a local address,
// to be fronted by Caddy with `faxhook { profile sinch_v3 }`.
//
//	sinchfax -listen 127.0.0.1:8092 -key key -secret secret -project p1 -tick 200ms -fail +15550400001
//
// It prints "sinchfax listening on http://ADDR/v3/projects/PROJECT" (the poll upstream) once it
// accepts connections and stops on SIGINT or SIGTERM.
package main

import (
	"flag"
	"fmt"
	"log"
	"net"
	"strings"
	"time"

	"github.com/faxhook/caddy-faxhook/examples/simserve"
	"github.com/faxhook/caddy-faxhook/examples/sinchfax"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:8092", "address to listen on")
	key := flag.String("key", "key", "HTTP Basic key id clients must send")
	secret := flag.String("secret", "secret", "HTTP Basic key secret clients must send")
	project := flag.String("project", "p1", "project id in the routes /v3/projects/{id}/faxes")
	tick := flag.Duration("tick", 200*time.Millisecond, "duration of one simulation step")
	fail := flag.String("fail", "", "comma-separated numbers to which every fax fails")
	flag.Parse()
	cfg := sinchfax.Config{KeyID: *key, KeySecret: *secret, ProjectID: *project, Tick: *tick}
	if *fail != "" {
		cfg.FailTo = strings.Split(*fail, ",")
	}
	sim := sinchfax.New(cfg)
	err := simserve.Run(*listen, sim, func(a net.Addr) string {
		return fmt.Sprintf("sinchfax listening on http://%s%s", a, sim.Prefix())
	})
	if err != nil {
		log.Fatalf("sinchfax: %v", err)
	}
}
