// Command mediafax runs the simulated fax service of package mediafax on a local address, in
// the shape of Telnyx Programmable Fax or of the Twilio Fax resource (SignalWire's Compatibility
// API), to be fronted by Caddy with `faxhook { profile telnyx }` or `profile twilio_fax`.
//
//	mediafax -shape telnyx -listen 127.0.0.1:8093 -key KEY -tick 200ms -fail +15550400001
//	mediafax -shape twilio_fax -listen 127.0.0.1:8094 -account AC1 -token TOKEN
//
// It prints "mediafax (SHAPE) listening on http://ADDR/PREFIX" (the poll upstream) once it
// accepts connections and stops on SIGINT or SIGTERM.
package main

import (
	"flag"
	"fmt"
	"log"
	"net"
	"strings"
	"time"

	"github.com/faxhook/caddy-faxhook/examples/mediafax"
	"github.com/faxhook/caddy-faxhook/examples/simserve"
)

func main() {
	shape := flag.String("shape", string(mediafax.Telnyx), "API shape: telnyx or twilio_fax")
	listen := flag.String("listen", "127.0.0.1:8093", "address to listen on")
	key := flag.String("key", "KEY", "telnyx: the API key clients must send as a bearer token")
	account := flag.String("account", "AC1", "twilio_fax: the account (project) id: Basic user name and {AccountSid} of the routes")
	token := flag.String("token", "TOKEN", "twilio_fax: the auth token clients must send as the Basic password")
	tick := flag.Duration("tick", 200*time.Millisecond, "duration of one simulation step")
	fail := flag.String("fail", "", "comma-separated numbers to which every fax fails")
	flag.Parse()
	cfg := mediafax.Config{Shape: mediafax.Shape(*shape), APIKey: *key, AccountSID: *account, AuthToken: *token, Tick: *tick}
	if *fail != "" {
		cfg.FailTo = strings.Split(*fail, ",")
	}
	sim, err := mediafax.New(cfg)
	if err != nil {
		log.Fatalf("mediafax: %v", err)
	}
	err = simserve.Run(*listen, sim, func(a net.Addr) string {
		return fmt.Sprintf("mediafax (%s) listening on http://%s%s", *shape, a, sim.Prefix())
	})
	if err != nil {
		log.Fatalf("mediafax: %v", err)
	}
}
