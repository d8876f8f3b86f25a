package module_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
)

// Invalid standard_webhooks entries in JSON fail validation (what `caddy validate` runs) with a
// message naming the option and the entry, never the secret.
func TestStandardWebhooksJSONValidation(t *testing.T) {
	app := func(entries string) string {
		return fmt.Sprintf(`{"admin":{"disabled":true},"apps":{"faxhook":{"storage":%q,"standard_webhooks":[%s]}}}`, t.TempDir(), entries)
	}
	for entries, want := range map[string]string{
		`{"secret":""}`: `standard_webhooks: parsing Standard Webhooks secret: it is empty (entry 1)`,
		`{"secret":"whsec_MfKQ"},{"secret":"hunter2"}`:               `standard_webhooks: parsing Standard Webhooks secret: it does not start with "whsec_" (entry 2)`,
		`{"secret":"whsec_hun ter2"}`:                                `the part after "whsec_" is not valid base64`,
		`{"secret":"{env.X}","url_prefixes":["mailto:a@b.example"]}`: `URL prefix "mailto:a@b.example": want the start of an http or https URL`,
	} {
		var cfg caddy.Config
		if err := json.Unmarshal([]byte(app(entries)), &cfg); err != nil {
			t.Fatal(err)
		}
		err := caddy.Validate(&cfg)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: validate error = %v, want one containing %q", entries, err, want)
		}
		if err != nil && strings.Contains(err.Error(), "hunter2") || err != nil && strings.Contains(err.Error(), "hun ter2") {
			t.Errorf("error shows the secret: %v", err)
		}
	}
	var cfg caddy.Config
	if err := json.Unmarshal([]byte(app(`{"secret":"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw","url_prefixes":["https://a.example/"]}`)), &cfg); err != nil {
		t.Fatal(err)
	}
	if err := caddy.Validate(&cfg); err != nil {
		t.Fatalf("a valid standard_webhooks failed validation: %v", err)
	}
}
