// Command caddy is Caddy with the standard modules and the faxhook plugin: the same program that
// `./xcaddy.sh build` produces, buildable with plain `go build` from this module so that tests can
// run a real Caddy process without xcaddy.
package main

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	_ "github.com/caddyserver/caddy/v2/modules/standard"
	_ "github.com/faxhook/caddy-faxhook/module/plugin"
)

func main() {
	caddycmd.Main()
}
