package caddyfile_test

import (
	"encoding/json"
	"strings"
	"testing"
)

// webhook_version, global and per number, adapts to webhook_version and number_versions; a
// number block with only a version gives no URLs of its own, and every spelling Phaxio uses is
// kept as written (the app parses it).
func TestAdaptWebhookVersions(t *testing.T) {
	m, err := adapt(t, `{
	faxhook {
		webhook_version 2.0.0
		received_url https://a.example/received
		number +15551230001 https://a.example/v1 {
			webhook_version 1
		}
		number +15551230002 {
			webhook_version 2.1.0
		}
		number +15551230003 https://a.example/plain
	}
}`)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := json.Marshal(m["apps"].(map[string]any)["faxhook"])
	want := `{"number_versions":{"+15551230001":"1","+15551230002":"2.1.0"},` +
		`"numbers":{"+15551230001":["https://a.example/v1"],"+15551230003":["https://a.example/plain"]},` +
		`"received_urls":["https://a.example/received"],"webhook_version":"2.0.0"}`
	if string(got) != want {
		t.Fatalf("faxhook app JSON:\n got %s\nwant %s", got, want)
	}
}

func TestInvalidWebhookVersions(t *testing.T) {
	cases := map[string]struct{ cf, want string }{
		"unknown version":       {global(`webhook_version 3`), `webhook_version: webhook version "3" is not 2.1, 2 or 1`},
		"no version":            {global(`webhook_version`), `webhook_version: want one version: 2.1, 2 or 1`},
		"two versions":          {global(`webhook_version 1 2`), `webhook_version: want one version`},
		"inflight with v1":      {global("webhook_version 1\n inflight on"), `inflight on: webhook_version 1 has no inflight events (only 2.1 has them)`},
		"inflight with v2":      {global("inflight on\n webhook_version 2.0.0"), `inflight on: webhook_version 2 has no inflight events`},
		"number bad version":    {global("number +15551230001 https://a.example/x {\n webhook_version 1.5\n }"), `number webhook_version: webhook version "1.5" is not 2.1, 2 or 1`},
		"number unknown option": {global("number +15551230001 https://a.example/x {\n colour red\n }"), `unknown number option "colour" (allowed: webhook_version)`},
		"number empty block":    {global("number +15551230001 {\n }"), `number: want a phone number and at least one URL, or a block with webhook_version`},
		"number without phone":  {global("number {\n webhook_version 1\n }"), `number: want a phone number`},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := adapt(t, c.cf)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error = %v, want one containing %q", err, c.want)
			}
		})
	}
	// Inflight with an older version on one number only is fine: that number's faxes get no
	// inflight events.
	if _, err := adapt(t, global("inflight on\n number +15551230001 https://a.example/x {\n webhook_version 1\n }")); err != nil {
		t.Fatalf("inflight on with a v1 number: %v", err)
	}
}
