package caddyfile_test

import (
	"encoding/json"
	"strings"
	"testing"
)

// faxhook_console adapts to the console handler, ordered before handle blocks and
// reverse_proxy and after basic_auth; it takes no arguments.
func TestAdaptConsole(t *testing.T) {
	m, err := adapt(t, `:2020 {
	reverse_proxy 127.0.0.1:9
	faxhook_console
	basic_auth {
		ops $2a$14$Zkx19XLiW6VYouLHR5NmfOFU0z2GTNmpkT/5qqR7hx4IjWJPDhjvG
	}
}`)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(m)
	s := string(b)
	auth, console, proxy := strings.Index(s, `"authentication"`), strings.Index(s, `"faxhook_console"`), strings.Index(s, `"reverse_proxy"`)
	if console < 0 || !(auth < console && console < proxy) {
		t.Errorf("handler order (authentication %d, faxhook_console %d, reverse_proxy %d): %s", auth, console, proxy, s)
	}
	m, err = adapt(t, ":2020 {\n faxhook_console {\n admin 127.0.0.1:2999\n }\n}")
	if b, _ := json.Marshal(m); err != nil || !strings.Contains(string(b), `"admin":"127.0.0.1:2999"`) {
		t.Errorf("faxhook_console { admin }: %v %s", err, b)
	}
	for _, bad := range []string{":2020 {\n faxhook_console extra\n}", ":2020 {\n faxhook_console {\n x\n }\n}", ":2020 {\n faxhook_console {\n admin\n }\n}"} {
		if _, err := adapt(t, bad); err == nil || !strings.Contains(err.Error(), "faxhook_console") {
			t.Errorf("%q: error %v", bad, err)
		}
	}
}
