package caddyfile_test

import (
	"strings"
	"testing"
)

// `profile sinch_v3` selects a shipped mapping; an unknown name or a profile beside a mapping
// fails validation, naming the option.
func TestShippedProfileOption(t *testing.T) {
	m, err := adapt(t, global("profile sinch_v3")+"\n:80 {\n faxhook\n reverse_proxy 127.0.0.1:9\n}")
	if err != nil {
		t.Fatal(err)
	}
	app, _ := m["apps"].(map[string]any)["faxhook"].(map[string]any)
	if app["profile"] != "sinch_v3" {
		t.Fatalf("profile not in the app config: %v", app)
	}
	if err := adaptAndValidate(t, global("profile sinch_v3")+"\n:80 {\n faxhook\n reverse_proxy 127.0.0.1:9\n}"); err != nil {
		t.Fatalf("profile sinch_v3 failed validation: %v", err)
	}
	err = adaptAndValidate(t, global("profile phaxio_v9")+"\n:80 {\n faxhook\n reverse_proxy 127.0.0.1:9\n}")
	if err == nil || !strings.Contains(err.Error(), `profile: profile "phaxio_v9" is not shipped (shipped: sinch_v3, telnyx, twilio_fax)`) {
		t.Fatalf("an unknown profile: %v", err)
	}
	if _, err := adapt(t, global("profile")); err == nil {
		t.Fatal("profile without a name adapted")
	}
}
