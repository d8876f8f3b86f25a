package caddyfile_test

import (
	"encoding/json"
	"strings"
	"testing"
)

// standard_webhooks, global and per URL prefix, adapts to apps.faxhook.standard_webhooks in
// order, placeholders untouched.
func TestAdaptStandardWebhooks(t *testing.T) {
	m, err := adapt(t, `{
	faxhook {
		token {env.FAXHOOK_TOKEN}
		standard_webhooks {env.FAXHOOK_SWH_SECRET}
		standard_webhooks {env.APP2_SWH_SECRET} https://app2.example.com/hooks/ https://app2.example.net/
		standard_webhooks whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw https://app2.example.com/hooks/
		sent_url https://app2.example.com/hooks/sent
	}
}`)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := json.Marshal(m["apps"].(map[string]any)["faxhook"])
	want := `{"sent_urls":["https://app2.example.com/hooks/sent"],"standard_webhooks":[` +
		`{"secret":"{env.FAXHOOK_SWH_SECRET}"},` +
		`{"secret":"{env.APP2_SWH_SECRET}","url_prefixes":["https://app2.example.com/hooks/","https://app2.example.net/"]},` +
		`{"secret":"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw","url_prefixes":["https://app2.example.com/hooks/"]}],` +
		`"token":"{env.FAXHOOK_TOKEN}"}`
	if string(got) != want {
		t.Fatalf("faxhook app JSON:\n got %s\nwant %s", got, want)
	}
}

// Invalid literal secrets and prefixes fail adapting; a placeholder that turns out empty or
// invalid fails validation. No error shows the secret.
func TestStandardWebhooksErrors(t *testing.T) {
	for cf, want := range map[string]string{
		global(`standard_webhooks`):                                  `standard_webhooks: want a secret`,
		global(`standard_webhooks MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw`): `standard_webhooks: parsing Standard Webhooks secret: it does not start with "whsec_"`,
		global(`standard_webhooks whsec_`):                           `standard_webhooks: parsing Standard Webhooks secret: no key after "whsec_"`,
		global(`standard_webhooks whsec_sec!ret`):                    `standard_webhooks: parsing Standard Webhooks secret: the part after "whsec_" is not valid base64`,
		global(`standard_webhooks {env.X} mailto:ops@example.com`):   `standard_webhooks: URL prefix "mailto:ops@example.com": want the start of an http or https URL (mailto: webhooks are not signed)`,
		global(`standard_webhooks {env.X} https://u:sec@a.example/`): `standard_webhooks: URL prefix`,
		global(`standard_webhooks {env.X} app.example.com/hooks`):    `want the start of an http or https URL`,
	} {
		_, err := adapt(t, cf)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("adapt error = %v, want one containing %q", err, want)
			continue
		}
		for _, secret := range []string{"MfKQ9r8", "sec!ret", ":sec@"} {
			if strings.Contains(err.Error(), secret) {
				t.Errorf("error shows a secret: %v", err)
			}
		}
	}

	storage := "storage " + t.TempDir()
	t.Setenv("FAXHOOK_TEST_SWH_BAD", "whsec_not!base64")
	for cf, want := range map[string]string{
		global(storage + "\n standard_webhooks {env.FAXHOOK_TEST_SWH_UNSET}"): `standard_webhooks (entry 1, secret {env.FAXHOOK_TEST_SWH_UNSET}): parsing Standard Webhooks secret: it is empty`,
		global(storage + "\n standard_webhooks {env.FAXHOOK_TEST_SWH_BAD}"):   `standard_webhooks (entry 1, secret {env.FAXHOOK_TEST_SWH_BAD}): parsing Standard Webhooks secret: the part after "whsec_" is not valid base64`,
	} {
		err := adaptAndValidate(t, cf)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("validate error = %v, want one containing %q", err, want)
		}
		if err != nil && strings.Contains(err.Error(), "not!base64") {
			t.Errorf("error shows the secret: %v", err)
		}
	}
	t.Setenv("FAXHOOK_TEST_SWH_GOOD", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	if err := adaptAndValidate(t, global(storage+"\n standard_webhooks {env.FAXHOOK_TEST_SWH_GOOD} https://a.example/")); err != nil {
		t.Fatalf("a valid standard_webhooks failed validation: %v", err)
	}
}
