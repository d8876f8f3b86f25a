// Package plugin registers every faxhook Caddy module (the `faxhook` app and the
// `http.handlers.faxhook` handler) and faxhook's Caddyfile syntax. It is the package to build into
// Caddy:
//
//	xcaddy build v2.11.9 --with github.com/faxhook/caddy-faxhook/module/plugin
package plugin

import (
	// The Caddyfile syntax imports the handler, which imports the app.
	_ "github.com/faxhook/caddy-faxhook/caddyfile"
)
