package caddyfile

import (
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/faxhook/caddy-faxhook/module/console"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("faxhook_console", parseConsole)
	// Right after encode (as faxhook) and before handle and reverse_proxy; authentication
	// directives (basic_auth, forward_auth) come earlier in Caddy's order.
	httpcaddyfile.RegisterDirectiveOrder("faxhook_console", httpcaddyfile.After, "encode")
}

// parseConsole parses `faxhook_console [{ admin ADDRESS }]`: the web console at
// /faxhook/console/ of the site; admin is the address of Caddy's admin endpoint the settings page
// changes settings through, when the config moves it from localhost:2019.
func parseConsole(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	h.Next() // the directive's name
	if h.NextArg() {
		return nil, h.Errf("faxhook_console: unexpected argument %q (the console is served at %s; options go in a block)", h.Val(), console.Prefix)
	}
	c := new(console.Console)
	for nesting := h.Nesting(); h.NextBlock(nesting); {
		switch h.Val() {
		case "admin":
			if !h.AllArgs(&c.Admin) {
				return nil, h.Err("faxhook_console admin: want the admin endpoint's address, e.g. localhost:2019")
			}
		default:
			return nil, h.Errf("faxhook_console: unexpected option %q (want admin)", h.Val())
		}
	}
	return c, nil
}
