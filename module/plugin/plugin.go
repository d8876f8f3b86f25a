// Package plugin registers every faxhook Caddy module (the `faxhook` app, the
// `http.handlers.faxhook` handler and the `http.handlers.faxhook_console` console) and
// faxhook's Caddyfile syntax. It is the package to build into Caddy:
//
//	xcaddy build v2.11.9 --with github.com/faxhook/caddy-faxhook/module/plugin
package plugin

import (
	// The Caddyfile syntax imports the handlers (faxhook, faxhook_console), which import the app.
	_ "github.com/faxhook/caddy-faxhook/caddyfile"
)
