package module_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
)

// Webhook versions in the JSON config: bad ones, and inflight with a global version below 2.1,
// fail validation naming the option; a number's older version with inflight on validates.
func TestWebhookVersionValidation(t *testing.T) {
	app := func(opts string) string {
		return fmt.Sprintf(`{"admin":{"disabled":true},"apps":{"faxhook":{"storage":%q%s}}}`, t.TempDir(), opts)
	}
	cases := map[string]struct{ cfg, want string }{
		"version":          {app(`,"webhook_version":"3.0"`), `webhook_version: webhook version "3.0" is not 2.1, 2 or 1`},
		"inflight v1":      {app(`,"webhook_version":"1","inflight":true`), `inflight: webhook_version 1 has no inflight events`},
		"inflight v2":      {app(`,"webhook_version":"2.0.0","inflight":true`), `inflight: webhook_version 2 has no inflight events`},
		"number version":   {app(`,"number_versions":{"+15551234567":"0.9"}`), `number +15551234567: webhook_version: webhook version "0.9"`},
		"number not E.164": {app(`,"number_versions":{"5551234567":"1"}`), `number "5551234567": not an E.164 number`},
	}
	for _, good := range []string{
		app(`,"webhook_version":"2.1.0","inflight":true,"number_versions":{"+15551234567":"1","+15551234568":"v2"}`),
		app(`,"webhook_version":"1.0.0"`),
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
