package queue

import (
	"reflect"
	"strings"
	"testing"
)

func TestSignedURL(t *testing.T) {
	cases := map[string]string{
		"https://foo:bar@example.com/hook?x=1": "https://example.com/hook?x=1",
		"https://example.com/hook/":            "https://example.com/hook/",
		"http://127.0.0.1:8080/a?b=c&d":        "http://127.0.0.1:8080/a?b=c&d",
		"https://u:p@example.com/h?q=1#frag":   "https://example.com/h?q=1",
	}
	for in, want := range cases {
		if got := SignedURL(in); got != want {
			t.Errorf("SignedURL(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestSignedURLVerbatim(t *testing.T) {
	for _, u := range []string{"https://example.com/a%2Fb?q=%7e", "https://example.com:443/x", "example.com"} {
		if got := SignedURL(u); got != u {
			t.Errorf("SignedURL(%q) = %q, want it unchanged", u, got)
		}
	}
}

func TestRedactURL(t *testing.T) {
	for in, want := range map[string]string{
		"https://u:p@example.com/h?q=1#f":   "https://REDACTED@example.com/h?q=1#f",
		"https://u:p@x@example.com/h":       "https://REDACTED@example.com/h",
		"https://example.com/a@b?c=d@e":     "https://example.com/a@b?c=d@e",
		"mailto:ops@example.com?subject=x":  "mailto:ops@example.com?subject=x",
		"not a url but://user:pw@host/path": "not a url but://REDACTED@host/path",
		"":                                  "",
	} {
		if got := RedactURL(in); got != want {
			t.Errorf("RedactURL(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseTarget(t *testing.T) {
	got, err := ParseTarget("HTTPS://us%40er:p%3Ass@Example.com:8443/h?q=1#frag")
	want := Target{
		Raw: "HTTPS://us%40er:p%3Ass@Example.com:8443/h?q=1#frag", Scheme: "https",
		Destination: "https://example.com:8443", Signed: "HTTPS://Example.com:8443/h?q=1",
		Redacted: "HTTPS://REDACTED@Example.com:8443/h?q=1#frag", Userinfo: "us%40er:p%3Ass", Password: "p%3Ass",
		Host: "Example.com:8443", Hostname: "Example.com",
	}
	if user, pass, ok := got.BasicAuth(); !ok || user != "us@er" || pass != "p:ss" {
		t.Errorf("BasicAuth = %q, %q, %v; want the decoded us@er, p:ss", user, pass, ok)
	}
	got.user = nil
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("ParseTarget = %+v, %v\nwant %+v", got, err, want)
	}
	if _, _, ok := (Target{}).BasicAuth(); ok {
		t.Error("BasicAuth of a URL without credentials reports some")
	}

	got, err = ParseTarget("mailto:Ops@Example.org,b@y.test?cc=c@z.test&subject=Hi")
	if err != nil || got.Scheme != "mailto" || got.Destination != "mailto:example.org" || got.Userinfo != "" ||
		got.Mail == nil || !reflect.DeepEqual(got.Mail.All(), []string{"Ops@Example.org", "b@y.test", "c@z.test"}) || got.Mail.Subject != "Hi" {
		t.Errorf("mailto: ParseTarget = %+v (mail %+v), %v", got, got.Mail, err)
	}

	got, err = ParseTarget("https://[::1]/x")
	if err != nil || got.Hostname != "::1" || got.Host != "[::1]" || got.Destination != "https://[::1]" {
		t.Errorf("IPv6: ParseTarget = %+v, %v", got, err)
	}
}

// Invalid URLs are refused with what is wrong; the textual views are there all the same, so
// that the URL can be shown without its credentials.
func TestParseTargetInvalid(t *testing.T) {
	for _, tc := range []struct{ raw, want string }{
		{"https://", "missing host"},
		{"https:///path", "missing host"},
		{"example.com/hook", "missing scheme"},
		{"ftp://example.com/x", `unsupported scheme "ftp"`},
		{"http://2130706434/x", "numeric but not a dotted-decimal"},
		{"http://0x7f.1/x", "numeric but not a dotted-decimal"},
		{"http://127.1/x", "numeric but not a dotted-decimal"},
		{"http://u:p@exa mple.com/x", "not a URL"},
		{"mailto:", "no address"},
		{"mailto:nobody", "bad address"},
	} {
		got, err := ParseTarget(tc.raw)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseTarget(%q) error %v, want it to contain %q", tc.raw, err, tc.want)
		}
		if got.Raw != tc.raw || got.Redacted != RedactURL(tc.raw) || got.Signed != SignedURL(tc.raw) ||
			got.Destination != Destination(tc.raw) || got.Scheme != "" || got.Mail != nil {
			t.Errorf("ParseTarget(%q) views %+v", tc.raw, got)
		}
	}
	if got, err := ParseTarget("http://u:secret@exa mple.com/x"); got.Password != "secret" || got.Redacted != "http://REDACTED@exa mple.com/x" ||
		strings.Contains(err.Error(), "secret") {
		t.Errorf("credentials of an invalid URL: %+v, %v", got, err)
	}
	for _, ok := range []string{"http://127.0.0.1/x", "http://a.1b/x", "https://example.com./x", "http://[::ffff:7f00:1]/"} {
		if _, err := ParseTarget(ok); err != nil {
			t.Errorf("ParseTarget(%q): %v", ok, err)
		}
	}
}
