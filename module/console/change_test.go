package console

import (
	"encoding/json"
	"net/url"
	"os"
	"strings"
	"testing"
)

// appConfig is a faxhook app's JSON config with two accounts, one named by a placeholder key.
const appConfig = `{"sent_urls":["https://ops:pw@hooks.example/sent"],"numbers":{"+15550001111":["https://hooks.example/n1"]},
 "accounts":[{"api_key":"{env.CONSOLE_TEST_KEY}","token":"t1","received_urls":["https://a.example/in"]},
             {"api_key":"secret-bearer","name":"beta","token":"t2","inflight":true}]}`

func parseConfig(t *testing.T) map[string]any {
	t.Helper()
	cfg := map[string]any{}
	if err := json.Unmarshal([]byte(appConfig), &cfg); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// A settings form changes the global settings or one account's, keeps credentials behind a
// REDACTED URL sent back, and leaves what an account does not set to the global settings.
func TestApplyForm(t *testing.T) {
	os.Setenv("CONSOLE_TEST_KEY", "alpha-key")
	defer os.Unsetenv("CONSOLE_TEST_KEY")
	cfg := parseConfig(t)
	err := applyForm(cfg, url.Values{"account": {"alpha-key"}, "sent_urls": {"https://REDACTED@hooks.example/sent\n"},
		"numbers": {"+15550002222 https://a.example/n2 https://a.example/n2b"}, "inflight": {"on"}, "webhook_version": {""}})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(cfg["accounts"].([]any)[0])
	want := `{"api_key":"{env.CONSOLE_TEST_KEY}","inflight":true,"numbers":{"+15550002222":["https://a.example/n2","https://a.example/n2b"]},` +
		`"sent_urls":["https://ops:pw@hooks.example/sent"],"token":"t1"}`
	if string(b) != want {
		t.Errorf("account after the change:\n%s\nwant\n%s", b, want)
	}
	// An account named by name; its inflight left to the global setting.
	if err := applyForm(cfg, url.Values{"account": {"beta"}, "inflight": {""}, "webhook_version": {"2"}}); err != nil {
		t.Fatal(err)
	}
	if beta := cfg["accounts"].([]any)[1].(map[string]any); beta["inflight"] != nil || beta["webhook_version"] != "2" || beta["token"] != "t2" {
		t.Errorf("account beta after the change: %v", beta)
	}
	// The global form: numbers kept as sent back, version 2.1 is the default.
	if err := applyForm(cfg, url.Values{"numbers": {"+15550001111 https://hooks.example/n1"}, "webhook_version": {"2.1"}}); err != nil {
		t.Fatal(err)
	}
	if _, ok := cfg["sent_urls"]; ok || cfg["inflight"] != nil || cfg["webhook_version"] != nil {
		t.Errorf("global settings after the change: %v", cfg)
	}
	for _, c := range []struct {
		form url.Values
		want string
	}{
		{url.Values{"account": {"gamma"}}, "account gamma is not in Caddy's config"},
		{url.Values{"numbers": {"5550001111 https://x.example/"}, "webhook_version": {"2.1"}}, `"5550001111" is not an E.164 number`},
		{url.Values{"numbers": {"+15550001111"}, "webhook_version": {"2.1"}}, "+15550001111 has no URL"},
		{url.Values{"sent_urls": {"https://REDACTED@other.example/"}, "webhook_version": {"2.1"}}, "hides credentials this page cannot know"},
		{url.Values{"sent_urls": {"ftp://x.example/"}, "webhook_version": {"2.1"}}, "sent urls: ftp://x.example/"},
		{url.Values{"inflight": {"on"}, "webhook_version": {"1"}}, "inflight events exist only in webhook version 2.1"},
		{url.Values{"account": {"beta"}, "inflight": {"on"}, "webhook_version": {"2"}}, "account beta: inflight events exist only"},
		{url.Values{"webhook_version": {"3"}}, `webhook version "3"`},
	} {
		err := applyForm(parseConfig(t), c.form)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("form %v: %v, want an error with %q", c.form, err, c.want)
		}
	}
}
