package module_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/faxhook/caddy-faxhook/module/plugin"
)

// Every invalid option fails validation (what `caddy validate` runs) with a message naming it.
func TestInvalidConfigsFailValidation(t *testing.T) {
	app := func(opts string) string {
		return fmt.Sprintf(`{"admin":{"disabled":true},"apps":{"faxhook":{"storage":%q%s}}}`, t.TempDir(), opts)
	}
	handler := func(opts string) string {
		return fmt.Sprintf(`{"admin":{"disabled":true},"apps":{"faxhook":{"storage":%q},"http":{"servers":{"s":{"listen":["127.0.0.1:0"],`+
			`"routes":[{"handle":[{"handler":"faxhook"%s}]}]}}}}}`, t.TempDir(), opts)
	}
	cases := map[string]struct{ cfg, want string }{
		"sent_url scheme":           {app(`,"sent_urls":["ftp://x/y"]`), `sent_url "ftp://x/y": unsupported scheme`},
		"sent_url host":             {app(`,"sent_urls":["https://"]`), `sent_url "https://": missing host`},
		"sent_url numeric host":     {app(`,"sent_urls":["http://2130706434/"]`), `sent_url "http://2130706434/": host "2130706434" is numeric but not a dotted-decimal IPv4 address`},
		"number url numeric host":   {app(`,"numbers":{"+15551234567":["http://0x7f.2/"]}`), `host "0x7f.2" is numeric`},
		"received_url mailto":       {app(`,"received_urls":["mailto:"]`), `received_url "mailto:"`},
		"retry_schedule":            {app(`,"retry_schedule":["5m","-1m"]`), `retry_schedule: entry 2`},
		"timeout":                   {app(`,"timeout":"-5s"`), `timeout: -5s is negative`},
		"workers":                   {app(`,"workers":-1`), `workers: -1 is negative`},
		"per_host":                  {app(`,"per_host":-2`), `per_host: -2 is negative`},
		"health failures":           {app(`,"health":{"failures":-1}`), `health failures: -1 is negative`},
		"health probe_interval":     {app(`,"health":{"probe_interval":"100ms"}`), `health probe_interval: 100ms is out of range`},
		"health off and failures":   {app(`,"health":{"off":true,"failures":3}`), `health: off leaves no room for failures or probe_interval`},
		"number":                    {app(`,"numbers":{"5551234":["https://a.example/x"]}`), `number "5551234"`},
		"number url":                {app(`,"numbers":{"+15551234567":["gopher://x"]}`), `number +15551234567 "gopher://x"`},
		"max_file_size":             {app(`,"max_file_size":-1`), `max_file_size: -1 is negative`},
		"poll upstream":             {app(`,"poll":{"upstream":"ftp://x"}`), `poll upstream "ftp://x"`},
		"poll interval":             {app(`,"poll":{"upstream":"http://x/v2.1","interval":"-1s"}`), `poll interval`},
		"allow_private":             {app(`,"allow_private":["10.0.0.0/33"]`), `allow_private`},
		"smtp from":                 {app(`,"smtp":{"server":"mail.example.com:587"}`), `smtp`},
		"unknown option":            {app(`,"colour":"blue"`), `colour`},
		"max_capture":               {handler(`,"max_capture":-5`), `max_capture: -5 is negative`},
		"mapping":                   {handler(`,"mapping":{"send":"POST /x"}`), `mapping`},
		"mapping on the handler":    {handler(`,"mapping":{"send":"POST /x"}`), `faxhook handler: mapping moved to the faxhook app: set it in the global option (faxhook { mapping FILE }), or as apps.faxhook.mapping in JSON`},
		"app mapping":               {app(`,"mapping":{"send":"POST /x"}`), `mapping: fields.id`},
		"app mapping list_received": {app(`,"mapping":{"list":"GET /x","list_received":"?a=b","fields":{"id":"id","status":"s"}}`), `mapping: list_received: "?a=b" is not a query string`},
		"poll header":               {app(`,"poll":{"upstream":"http://x/v2.1","headers":{"Bad Name":"v"}}`), `poll header "Bad Name": not a valid header name`},
		// Counts and sizes are bounded: a typo must fail validation, not reserve gigabytes.
		"workers too many":          {app(`,"workers":100000000`), `workers: 100000000 is too large; allowed: 1 to 1024, or 0 for the default (16)`},
		"per_host too many":         {app(`,"per_host":1025`), `per_host: 1025 is too large; allowed: 1 to 1024`},
		"poll concurrency too many": {app(`,"poll":{"upstream":"http://x/v2.1","concurrency":257}`), `poll concurrency: 257 is too large; allowed: 1 to 256`},
		"poll concurrency negative": {app(`,"poll":{"upstream":"http://x/v2.1","concurrency":-1}`), `poll concurrency: -1 is negative`},
		"retry_schedule too long":   {app(`,"retry_schedule":[` + strings.TrimSuffix(strings.Repeat(`"1m",`, 101), ",") + `]`), `retry_schedule: 101 entries is too many; allowed: 1 to 100`},
		"max_file_size too large":   {app(`,"max_file_size":268435457`), `max_file_size: 268435457 is too large; allowed: 1 to 268435456`},
		"max_capture too large":     {handler(`,"max_capture":1073741825`), `max_capture: 1073741825 is too large; allowed: 1 to 1073741824`},
		"max_recipients too many":   {app(`,"max_recipients":100001`), `max_recipients: 100001 is too large; allowed: 1 to 100000, or 0 for the default (1000)`},
		"max_events negative":       {app(`,"max_events":-3`), `max_events: -3 is negative`},
		"min_free_space":            {app(`,"min_free_space":1000`), `min_free_space: 1000 bytes is below the minimum`},
		"account no key":            {app(`,"accounts":[{"token":"t"}]`), `account 1: api_key is empty`},
		"account poll_secret":       {app(`,"accounts":[{"api_key":"k","poll_secret":"s"}]`), `account k poll_secret: the poller is not configured`},
		"account metrics":           {app(`,"accounts":[` + manyAccounts(101, `"metrics":true`) + `]`), `more than 100 accounts have metrics on`},
		"account version":           {app(`,"accounts":[{"api_key":"k","webhook_version":"3"}]`), `account k webhook_version: webhook version "3" is not 2.1, 2 or 1`},
		"account version inflight":  {app(`,"accounts":[{"api_key":"k","webhook_version":"2","inflight":true}]`), `account k inflight: webhook_version 2 has no inflight events`},
		"account standard_webhooks": {app(`,"accounts":[{"api_key":"k","standard_webhooks":[{"secret":"nope"}]}]`), `account k standard_webhooks`},
		"account twice":             {app(`,"accounts":[{"api_key":"k"},{"api_key":"k"}]`), `account "k": listed twice`},
		"account key with colon":    {app(`,"accounts":[{"api_key":"k:s"}]`), `account "k:s": an API key is at most 256 bytes, without colons or white space`},
		"account sent_url":          {app(`,"accounts":[{"api_key":"k","sent_urls":["ftp://x"]}]`), `account k sent_url "ftp://x": unsupported scheme`},
		"account number":            {app(`,"accounts":[{"api_key":"k","numbers":{"+1555x234567":["https://a.example/"]}}]`), `account k number "+1555x234567": not an E.164 number`},
	}
	// The same shapes with good values validate.
	for _, good := range []string{
		app(`,"sent_urls":["https://a.example/x"],"retry_schedule":["1m"],"numbers":{"+15551234567":["https://a.example/n"]},"poll":{"upstream":"http://127.0.0.1:1/v2.1"}`),
		handler(`,"max_capture":4096`),
		// Every bound itself is allowed.
		app(`,"workers":1024,"per_host":1024,"max_file_size":268435456,"poll":{"upstream":"http://127.0.0.1:1/v2.1","concurrency":256},` +
			`"retry_schedule":[` + strings.TrimSuffix(strings.Repeat(`"1m",`, 100), ",") + `]`),
		handler(`,"max_capture":1073741824`),
	} {
		var cfg caddy.Config
		if err := json.Unmarshal([]byte(good), &cfg); err != nil {
			t.Fatal(err)
		}
		if err := caddy.Validate(&cfg); err != nil {
			t.Fatalf("a valid config failed validation: %v", err)
		}
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			var cfg caddy.Config
			if err := json.Unmarshal([]byte(c.cfg), &cfg); err != nil {
				t.Fatal(err)
			}
			err := caddy.Validate(&cfg)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("validate error = %v, want one naming %q", err, c.want)
			}
		})
	}
}

// manyAccounts returns the JSON of n accounts with distinct API keys and the fields extra.
func manyAccounts(n int, extra string) string {
	var b []string
	for i := range n {
		b = append(b, fmt.Sprintf(`{"api_key":"k%d",%s}`, i, extra))
	}
	return strings.Join(b, ",")
}
