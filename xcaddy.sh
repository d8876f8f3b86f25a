#!/usr/bin/env bash
# xcaddy.sh — build, demo and test faxhook.
#
#   ./xcaddy.sh build   build ./caddy: Caddy v2.11.9 with the faxhook plugin (xcaddy v0.4.5)
#   ./xcaddy.sh demo    build, then run the demo: simulated fax service + webhook receiver +
#                       Caddy with faxhook on loopback; sends faxes and prints verified webhooks
#   ./xcaddy.sh test    build, then run the whole test suite (what CI runs)
#   ./xcaddy.sh modules list the faxhook modules of the built ./caddy
#
# Everything it needs is installed by itself: xcaddy with `go install` when missing, and for
# `test` PostgreSQL's server (Debian's postgresql package) and Chromium (Debian's chromium, for
# the console's browser test) when missing.
set -euo pipefail
cd "$(dirname "$0")"

CADDY_VERSION=v2.11.9
XCADDY_VERSION=v0.4.5
MODULE=github.com/faxhook/caddy-faxhook
GOBIN_DIR="$(go env GOPATH)/bin"
export PATH="$GOBIN_DIR:$PATH"

ensure_xcaddy() {
	if ! command -v xcaddy >/dev/null 2>&1 || ! xcaddy version 2>/dev/null | grep -q "$XCADDY_VERSION"; then
		echo "installing xcaddy $XCADDY_VERSION" >&2
		go install "github.com/caddyserver/xcaddy/cmd/xcaddy@$XCADDY_VERSION"
	fi
}

# ensure_postgres installs PostgreSQL's server binaries (Debian's postgresql package) when
# none is found: the fleet tests start a real PostgreSQL server on loopback themselves, in a
# temporary directory, and stop it.
ensure_postgres() {
	if [ -x /usr/lib/postgresql/15/bin/postgres ] || ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
		return
	fi
	if command -v pg_config >/dev/null 2>&1 && [ -x "$(pg_config --bindir)/postgres" ]; then
		return
	fi
	echo "installing PostgreSQL (Debian package postgresql) for the fleet tests" >&2
	local sudo=""
	[ "$(id -u)" = 0 ] || sudo="sudo"
	$sudo apt-get update -qq >&2 || true
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends postgresql >&2
}

# ensure_chromium installs Debian's chromium when no Chromium is found: the console's browser
# test drives it (headless) with chromedp.
ensure_chromium() {
	if command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ]; then
		return
	fi
	echo "installing Chromium (Debian package chromium) for the console's browser test" >&2
	local sudo=""
	[ "$(id -u)" = 0 ] || sudo="sudo"
	$sudo apt-get update -qq >&2 || true
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends chromium >&2
}

build() {
	ensure_xcaddy
	echo "building ./caddy (Caddy $CADDY_VERSION + faxhook) with xcaddy" >&2
	# Fetch this module's whole dependency graph (Caddy included) through the module proxy first,
	# then let xcaddy work from the module cache alone: its build module must not look up
	# github.com/faxhook/caddy-faxhook on the proxy, which does not have it (it is replaced by
	# this checkout). go mod download verified every module against go.sum, so the checksum
	# database need not be asked again (it is not reachable with GOPROXY=off).
	go mod download
	GOPROXY=off GOSUMDB=off GOFLAGS=-mod=mod xcaddy build "$CADDY_VERSION" \
		--output ./caddy \
		--with "$MODULE/module/plugin" \
		--replace "$MODULE=." >&2
	# Read the whole list before searching it: with pipefail, `caddy list-modules | grep -q` fails
	# at random when grep exits on its match and caddy, still writing, dies of SIGPIPE.
	local modules
	modules="$(./caddy list-modules)"
	grep -qx 'faxhook' <<<"$modules" || { echo "built caddy lacks the faxhook app" >&2; exit 1; }
	grep -qx 'http.handlers.faxhook' <<<"$modules" || { echo "built caddy lacks http.handlers.faxhook" >&2; exit 1; }
	grep -qx 'http.handlers.faxhook_console' <<<"$modules" || { echo "built caddy lacks http.handlers.faxhook_console" >&2; exit 1; }
}

case "${1:-}" in
build)
	build
	;;
demo)
	build
	go run ./examples/cmd/demo -caddy ./caddy "${@:2}"
	;;
test)
	ensure_postgres
	ensure_chromium
	build
	echo "running the test suite" >&2
	FAXHOOK_CADDY="$PWD/caddy" go test -race -count=1 -timeout 25m ./...
	echo "fuzzing each target for a few seconds" >&2
	# Budgets are counts of inputs (about 5 s each on 2 vCPUs), not durations: with a duration,
	# Go 1.26's fuzzing coordinator can fail a target with "context deadline exceeded" as the
	# time runs out (golang/go#75804, fixed in Go 1.27). FUZZTIME overrides every budget.
	for target in handler:FuzzServeHTTP:2000 module/profile:FuzzPhaxio:30000 handler/formtap:FuzzTap:30000 \
		module/profile:FuzzExtract:30000 handler/jsontap:FuzzJSONTap:30000; do
		IFS=: read -r pkg name budget <<<"$target"
		go test -run '^$' -fuzz "^$name\$" -fuzztime "${FUZZTIME:-${budget}x}" -fuzzminimizetime 200x "./$pkg"
	done
	;;
modules)
	./caddy list-modules | grep faxhook
	;;
*)
	sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'
	exit 2
	;;
esac
