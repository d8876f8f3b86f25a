package caddyfile_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	_ "github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/faxhook/caddy-faxhook/caddyfile"
	"github.com/faxhook/caddy-faxhook/examples/otherfax"
)

func adapt(t *testing.T, cf string) (map[string]any, error) {
	t.Helper()
	out, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(cf), nil)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(out, &m); err != nil {
		t.Fatal(err)
	}
	return m, nil
}

func TestAdaptGlobalOption(t *testing.T) {
	m, err := adapt(t, `{
	faxhook {
		storage /var/lib/faxhook
		token {env.FAXHOOK_TOKEN}
		sent_url https://a.example/sent https://b.example/sent
		received_url https://a.example/received
		retry_schedule 1m 2m 1h
		timeout 10s
		sync_writes off
		workers 4
		per_host 2
		delivered_retention 48h
		dead_retention forever
		inflight on
		max_recipients 500
		max_events 200
		number +15551230001 https://a.example/line1 https://b.example/line1
		max_file_size 5MiB
		min_free_space 100MiB
		allow_private 10.0.0.0/8 127.0.0.1
		smtp {
			server mail.example.com:587
			username fax
			password {env.SMTP_PASSWORD}
			from "Faxhook <fax@example.com>"
			tls implicit
			timeout 20s
		}
		poll {
			upstream http://127.0.0.1:8090/v2.1
			credentials {env.K} {env.S}
			header X-Api-Token {env.T}
			interval 2s
			concurrency 2
			max_rate 40
		}
	}
}
:8080 {
	faxhook
	reverse_proxy 127.0.0.1:9000
}`)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := json.Marshal(m["apps"].(map[string]any)["faxhook"])
	want := `{"allow_private":["10.0.0.0/8","127.0.0.1"],"dead_retention":-1,"delivered_retention":172800000000000,` +
		`"inflight":true,"max_events":200,"max_file_size":5242880,"max_recipients":500,"min_free_space":104857600,"numbers":{"+15551230001":["https://a.example/line1","https://b.example/line1"]},"per_host":2,` +
		`"poll":{"api_key":"{env.K}","api_secret":"{env.S}","concurrency":2,"headers":{"X-Api-Token":"{env.T}"},"interval":2000000000,"max_rate":40,"upstream":"http://127.0.0.1:8090/v2.1"},` +
		`"received_urls":["https://a.example/received"],"retry_schedule":[60000000000,120000000000,3600000000000],` +
		`"sent_urls":["https://a.example/sent","https://b.example/sent"],` +
		`"smtp":{"from":"Faxhook \u003cfax@example.com\u003e","password":"{env.SMTP_PASSWORD}","server":"mail.example.com:587","timeout":20000000000,"tls":"implicit","username":"fax"},` +
		`"storage":"/var/lib/faxhook","sync_writes":false,` +
		`"timeout":10000000000,"token":"{env.FAXHOOK_TOKEN}","workers":4}`
	if string(got) != want {
		t.Fatalf("faxhook app JSON:\n got %s\nwant %s", got, want)
	}
}

func TestAdaptPostgresStorage(t *testing.T) {
	m, err := adapt(t, `{
	faxhook {
		storage {env.FAXHOOK_DSN}
		postgres {
			max_conns 20
			statement_timeout 5s
			journal /var/lib/caddy/faxhook-journal
			instance caddy-a
		}
	}
}`)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := json.Marshal(m["apps"].(map[string]any)["faxhook"])
	want := `{"postgres":{"instance":"caddy-a","journal":"/var/lib/caddy/faxhook-journal","max_conns":20,"statement_timeout":5000000000},"storage":"{env.FAXHOOK_DSN}"}`
	if string(got) != want {
		t.Fatalf("faxhook app JSON:\n got %s\nwant %s", got, want)
	}
}

func TestDirectiveWrapsReverseProxyInsideHandle(t *testing.T) {
	m, err := adapt(t, `:8080 {
	handle /v2.1/* {
		reverse_proxy 127.0.0.1:9000
	}
	faxhook {
		max_capture 2MiB
	}
	encode gzip
}`)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(m)
	s := string(b)
	enc, fh, rp := strings.Index(s, `"handler":"encode"`), strings.Index(s, `"handler":"faxhook"`), strings.Index(s, `"handler":"reverse_proxy"`)
	if enc < 0 || fh < 0 || rp < 0 || !(enc < fh && fh < rp) {
		t.Fatalf("want encode, then faxhook, then reverse_proxy (in the handle block); got %s", s)
	}
	if !strings.Contains(s, `"max_capture":2097152`) {
		t.Fatalf("max_capture not adapted: %s", s)
	}
}

// global wraps options in a faxhook global option block.
func global(opts string) string { return "{\n\tfaxhook {\n\t\t" + opts + "\n\t}\n}" }

func TestAdaptAccounts(t *testing.T) {
	m, err := adapt(t, `{
	faxhook {
		token {env.FAXHOOK_TOKEN}
		account key-a {
			token {env.TOKEN_A}
			sent_url https://a.example/sent
			received_url https://a.example/received
			number +15551230001 https://a.example/line1
			inflight on
		}
		account key-b {
			sent_url https://b.example/sent
			inflight off
			poll_secret {env.SECRET_B}
		}
	}
}`)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := json.Marshal(m["apps"].(map[string]any)["faxhook"])
	want := `{"accounts":[{"api_key":"key-a","inflight":true,"numbers":{"+15551230001":["https://a.example/line1"]},"received_urls":["https://a.example/received"],"sent_urls":["https://a.example/sent"],"token":"{env.TOKEN_A}"},` +
		`{"api_key":"key-b","inflight":false,"poll_secret":"{env.SECRET_B}","sent_urls":["https://b.example/sent"]}],"token":"{env.FAXHOOK_TOKEN}"}`
	if string(got) != want {
		t.Fatalf("faxhook app JSON:\n got %s\nwant %s", got, want)
	}
}

func TestAdaptAccountKey(t *testing.T) {
	for cf, want := range map[string]string{
		"account_key bearer\n account {env.KEY_A} {\n name acme\n }": `{"account_key":"bearer","accounts":[{"api_key":"{env.KEY_A}","name":"acme"}]}`,
		"account_key header X-Api-Key":                               `{"account_key":"header:X-Api-Key"}`,
		"account_key basic":                                          `{"account_key":"basic"}`,
	} {
		m, err := adapt(t, global(cf))
		if err != nil {
			t.Fatalf("%q: %v", cf, err)
		}
		if got, _ := json.Marshal(m["apps"].(map[string]any)["faxhook"]); string(got) != want {
			t.Errorf("%q:\n got %s\nwant %s", cf, got, want)
		}
	}
	for _, bad := range []string{"account_key", "account_key token", "account_key header", "account_key bearer extra"} {
		if _, err := adapt(t, global(bad)); err == nil || !strings.Contains(err.Error(), "account_key: want basic, bearer, or header NAME") {
			t.Errorf("%q: error %v", bad, err)
		}
	}
}

func TestAdaptHealth(t *testing.T) {
	for cf, want := range map[string]string{
		"health {\n failures 3\n probe_interval 1m\n }": `{"health":{"failures":3,"probe_interval":60000000000}}`,
		"health off":         `{"health":{"off":true}}`,
		"health {\n off\n }": `{"health":{"off":true}}`,
	} {
		m, err := adapt(t, global(cf))
		if err != nil {
			t.Fatalf("%s: %v", cf, err)
		}
		got, _ := json.Marshal(m["apps"].(map[string]any)["faxhook"])
		if string(got) != want {
			t.Fatalf("%s: faxhook app JSON:\n got %s\nwant %s", cf, got, want)
		}
	}
}

func TestInvalidCaddyfiles(t *testing.T) {
	cases := map[string]struct{ cf, want string }{
		"unknown option":        {global(`colour blue`), `unknown faxhook option "colour"`},
		"bad sent_url scheme":   {global(`sent_url ftp://x/y`), `sent_url "ftp://x/y": unsupported scheme`},
		"sent_url no host":      {global(`sent_url http:///x`), `sent_url "http:///x": missing host`},
		"sent_url numeric host": {global(`sent_url http://017700000001/x`), `sent_url "http://017700000001/x": host "017700000001" is numeric`},
		"empty sent_url":        {global(`sent_url`), `sent_url: at least one URL expected`},
		"bad duration":          {global(`retry_schedule 5m soon`), `retry_schedule: "soon" is not a positive duration`},
		"empty ladder":          {global(`retry_schedule`), `retry_schedule: at least one delay expected`},
		"negative ladder":       {global(`retry_schedule -5m`), `retry_schedule: "-5m" is not a positive duration`},
		"bad timeout":           {global(`timeout 0s`), `timeout: "0s" is not a positive duration`},
		"bad sync_writes":       {global(`sync_writes maybe`), `sync_writes: "maybe" is not on or off`},
		"bad inflight":          {global(`inflight sometimes`), `inflight: "sometimes" is not on or off`},
		"number without url":    {global(`number +15551230001`), `number: want a phone number and at least one URL`},
		"number bad url":        {global(`number +15551230001 gopher://x`), `unsupported scheme`},
		"poll no upstream":      {global("poll {\n interval 5s\n }"), `poll: upstream is required`},
		"poll bad interval":     {global("poll {\n upstream http://x/v2.1\n interval never\n }"), `poll interval: "never" is not a positive duration`},
		"poll header no value":  {global("poll {\n upstream http://x/v2.1\n header X-Token\n }"), `poll header: want a header name and a value`},
		"poll one credential":   {global("poll {\n upstream http://x/v2.1\n credentials onlykey\n }"), `poll credentials: want an API key and an API secret`},
		"poll unknown":          {global("poll {\n upstream http://x/v2.1\n colour red\n }"), `unknown poll option "colour"`},
		"bad allow_private":     {global(`allow_private 10.0.0.0/33`), `allow_private:`},
		"smtp without from":     {global("smtp {\n server mail.example.com:587\n }"), `smtp: server and from are required`},
		"smtp bad tls":          {global("smtp {\n server m:25\n from a@b.c\n tls maybe\n }"), `smtp tls: "maybe" is not starttls`},
		"smtp unknown":          {global("smtp {\n server m:25\n from a@b.c\n colour red\n }"), `unknown smtp option "colour"`},
		"bad mailto":            {global(`sent_url mailto:`), `sent_url "mailto:"`},
		"bad per_host":          {global(`per_host 0`), `per_host: "0" is not a positive number`},
		"bad max_recipients":    {global(`max_recipients -1`), `max_recipients: "-1" is not a positive number`},
		"bad max_events":        {global(`max_events many`), `max_events: "many" is not a positive number`},
		"bad retention":         {global(`dead_retention soon`), `dead_retention: "soon" is not a positive duration or forever`},
		"min_free_space small":  {global(`min_free_space 1MiB`), `min_free_space 1MiB: 1048576 bytes is below the minimum of 33554432 (32 MiB)`},
		"min_free_space huge":   {global(`min_free_space 2TiB`), `min_free_space: "2TiB" is not a size between 32MiB and 1TiB`},
		"min_free_space word":   {global(`min_free_space lots`), `min_free_space: "lots" is not a size`},
		"health bad failures":   {global("health {\n failures 0\n }"), `health failures: "0" is not a positive number`},
		"health many failures":  {global("health {\n failures 5000\n }"), `health failures: 5000 is too large; allowed: 1 to 1000`},
		"health short probe":    {global("health {\n probe_interval 10ms\n }"), `health probe_interval: 10ms is out of range; allowed: 1s to 1h0m0s`},
		"health bad probe":      {global("health {\n probe_interval often\n }"), `health probe_interval: "often" is not a positive duration`},
		"health off and more":   {global("health off {\n failures 3\n }"), `health: off leaves no room for failures or probe_interval`},
		"health unknown":        {global("health {\n colour red\n }"), `unknown health option "colour"`},
		"health argument":       {global("health on"), `health: want off or a block, not "on"`},
		"bad workers":           {global(`workers many`), `workers: "many" is not a positive number`},
		"two args":              {global(`storage a b`), `wrong argument count`},
		"unknown subdirective":  {":80 {\n faxhook {\n  nope\n }\n}", `unknown faxhook subdirective "nope"`},
		"bad max_capture":       {":80 {\n faxhook {\n  max_capture huge\n }\n}", `max_capture: "huge" is not a size`},
		"mapping missing file":  {global(`mapping /nonexistent/m.json`), `mapping: reading /nonexistent/m.json`},
		"mapping no path":       {global(`mapping`), `mapping: want the path of a JSON mapping file`},
		"mapping on handler":    {":80 {\n faxhook {\n  mapping /etc/m.json\n }\n}", `mapping is an option of the faxhook app now, not of the faxhook directive: move it into the global option block, { faxhook { mapping FILE } }`},
		"directive argument":    {":80 {\n faxhook extra\n}", `wrong argument count`},
		"postgres argument":     {global("postgres postgres://x/db"), `the database goes in storage`},
		"postgres unknown":      {global("postgres {\n pool 3\n }"), `postgres: unknown option "pool"`},
		"postgres max_conns":    {global("postgres {\n max_conns 5000\n }"), `postgres max_conns: 5000 is too large; allowed: 1 to 1000`},
		"postgres timeout":      {global("postgres {\n statement_timeout 10ms\n }"), `postgres statement_timeout: "10ms" is not a duration of at least 1s`},
		"account no key":        {global("account {\n token t\n }"), `account: want the account's API key`},
		"account argument":      {global("account k extra"), `account k: unexpected argument "extra"`},
		"account unknown":       {global("account k {\n colour red\n }"), `account k: unknown option "colour"`},
		"account bad url":       {global("account k {\n sent_url ftp://x/y\n }"), `account k sent_url "ftp://x/y": unsupported scheme`},
		"account empty url":     {global("account k {\n received_url\n }"), `account k received_url: at least one URL expected`},
		"account bad inflight":  {global("account k {\n inflight maybe\n }"), `account k inflight: "maybe" is not on or off`},
		"account number":        {global("account k {\n number +15551230001\n }"), `account k number: want a phone number and at least one URL`},
		"account poll_secret":   {global("account k {\n poll_secret\n }"), `account k poll_secret: want one value`},
		"account bad version":   {global("account k {\n webhook_version 3\n }"), `account k webhook_version: webhook version "3" is not 2.1, 2 or 1`},
		"account bad swh":       {global("account k {\n standard_webhooks nope\n }"), `account k standard_webhooks`},
		"account bad metrics":   {global("account k {\n metrics lots\n }"), `account k metrics: "lots" is not on or off`},
		"account two tokens":    {global("account k {\n token a b\n }"), `account k token: want one value`},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := adapt(t, c.cf)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error = %v, want one containing %q", err, c.want)
			}
		})
	}
}

func TestMappingFile(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.json")
	os.WriteFile(good, []byte(otherfax.ExampleMappingJSON), 0o644)
	m, err := adapt(t, global("mapping "+good)+"\n:80 {\n faxhook\n reverse_proxy 127.0.0.1:9\n}")
	if err != nil {
		t.Fatal(err)
	}
	app, _ := m["apps"].(map[string]any)["faxhook"].(map[string]any)
	if b, _ := json.Marshal(app["mapping"]); !strings.Contains(string(b), `"send":"POST /api/fax/jobs"`) {
		t.Fatalf("mapping not embedded in the app config: %v", m)
	}
	bad := filepath.Join(dir, "bad.json")
	os.WriteFile(bad, []byte(`{"send":"POST /x","fields":{}}`), 0o644)
	if _, err := adapt(t, global("mapping "+bad)); err == nil || !strings.Contains(err.Error(), "mapping") {
		t.Fatalf("an incomplete mapping adapted: %v", err)
	}
	unknown := filepath.Join(dir, "unknown.json")
	os.WriteFile(unknown, []byte(`{"sendd":"POST /x"}`), 0o644)
	if _, err := adapt(t, global("mapping "+unknown)); err == nil || !strings.Contains(err.Error(), "sendd") {
		t.Fatalf("a mapping with an unknown field adapted: %v", err)
	}
}

// TestCaddyfileBoundsFailValidation: counts and sizes beyond their bounds adapt (the Caddyfile
// checks the syntax) but fail what `caddy validate` and `caddy run` do next, with an error
// naming the option, the value and the allowed range.
func TestCaddyfileBoundsFailValidation(t *testing.T) {
	storage := "storage " + t.TempDir()
	cases := map[string]struct{ cf, want string }{
		"workers":          {global(storage + "\n workers 100000000"), `workers: 100000000 is too large; allowed: 1 to 1024, or 0 for the default (16)`},
		"per_host":         {global(storage + "\n per_host 5000"), `per_host: 5000 is too large; allowed: 1 to 1024`},
		"poll concurrency": {global(storage + "\n poll {\n upstream http://127.0.0.1:1/v2.1\n concurrency 1000\n }"), `poll concurrency: 1000 is too large; allowed: 1 to 256`},
		"poll max_rate":    {global(storage + "\n poll {\n upstream http://127.0.0.1:1/v2.1\n max_rate 20000\n }"), `poll max_rate: 20000 is too large; allowed: 1 to 10000`},
		"retry_schedule":   {global(storage + "\n retry_schedule" + strings.Repeat(" 1m", 101)), `retry_schedule: 101 entries is too many; allowed: 1 to 100`},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			err := adaptAndValidate(t, c.cf)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("validate error = %v, want one containing %q", err, c.want)
			}
		})
	}
	// Sizes are bounded while adapting: a uint64 beyond int64 must not wrap to a negative size.
	for cf, want := range map[string]string{
		global(`max_file_size 257MiB`):                 `max_file_size: "257MiB" is not a size between 1 byte and 256 MiB`,
		global(`max_file_size 16EiB`):                  `max_file_size: "16EiB" is not a size between 1 byte and 256 MiB`,
		":80 {\n faxhook {\n  max_capture 2GiB\n }\n}": `max_capture: "2GiB" is not a size between 1 byte and 1.0 GiB`,
	} {
		if _, err := adapt(t, cf); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("adapt error = %v, want one containing %q", err, want)
		}
	}
	// The bounds themselves are accepted.
	good := global(storage + "\n workers 1024\n per_host 1024\n max_file_size 256MiB\n retry_schedule" + strings.Repeat(" 1m", 100) +
		"\n poll {\n upstream http://127.0.0.1:1/v2.1\n concurrency 256\n }")
	if err := adaptAndValidate(t, good); err != nil {
		t.Fatalf("a config at the bounds failed validation: %v", err)
	}
}

// adaptAndValidate adapts a Caddyfile and validates the result as `caddy validate` does.
func adaptAndValidate(t *testing.T, cf string) error {
	t.Helper()
	out, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(cf), nil)
	if err != nil {
		t.Fatalf("adapting: %v", err)
	}
	var cfg caddy.Config
	if err := json.Unmarshal(out, &cfg); err != nil {
		t.Fatal(err)
	}
	cfg.Admin = &caddy.AdminConfig{Disabled: true}
	return caddy.Validate(&cfg)
}
