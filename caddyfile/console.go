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

// parseConsole parses `faxhook_console`, which takes no arguments: the web console at
// /faxhook/console/ of the site.
func parseConsole(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	h.Next() // the directive's name
	if h.NextArg() {
		return nil, h.Errf("faxhook_console: unexpected argument %q (the console takes none; it is served at %s)", h.Val(), console.Prefix)
	}
	if h.NextBlock(0) {
		return nil, h.Errf("faxhook_console: unexpected block (the console takes no options)")
	}
	return new(console.Console), nil
}
