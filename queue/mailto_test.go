package queue

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseMailto(t *testing.T) {
	for _, tc := range []struct {
		raw  string
		want MailRecipients
	}{
		{"mailto:a@x.test", MailRecipients{To: []string{"a@x.test"}}},
		{"MAILTO:a@x.test", MailRecipients{To: []string{"a@x.test"}}},
		{"mailto:a@x.test,b@y.test", MailRecipients{To: []string{"a@x.test", "b@y.test"}}},
		{"mailto:a@x.test,b@x.test?cc=c@x.test", MailRecipients{To: []string{"a@x.test", "b@x.test"}, Cc: []string{"c@x.test"}}},
		{"mailto:a@x.test?cc=c@x.test,d@x.test&bcc=e@x.test&to=f@x.test",
			MailRecipients{To: []string{"a@x.test", "f@x.test"}, Cc: []string{"c@x.test", "d@x.test"}, Bcc: []string{"e@x.test"}}},
		{"mailto:?to=a@x.test", MailRecipients{To: []string{"a@x.test"}}},
		{"mailto:?cc=c@x.test", MailRecipients{Cc: []string{"c@x.test"}}},
		{"mailto:a@x.test?subject=Fax%20received", MailRecipients{To: []string{"a@x.test"}, Subject: "Fax received"}},
		{"mailto:a@x.test?Subject=a+b%2Bc", MailRecipients{To: []string{"a@x.test"}, Subject: "a+b+c"}},
		{"mailto:a@x.test?subject=%C3%BCber&subject=second", MailRecipients{To: []string{"a@x.test"}, Subject: "über"}},
		{"mailto:a@x.test?subject=", MailRecipients{To: []string{"a@x.test"}}},
		{"mailto:a@x.test?body=hello&in-reply-to=%3Cx@y%3E&cc=", MailRecipients{To: []string{"a@x.test"}}},
		{"mailto:a@x.test?&subject=x&", MailRecipients{To: []string{"a@x.test"}, Subject: "x"}},
		{"mailto:user+fax@x.test", MailRecipients{To: []string{"user+fax@x.test"}}},
		{"mailto:user%2Bfax@x.test", MailRecipients{To: []string{"user+fax@x.test"}}},
		{"mailto:%22not%2Ca%20list%22@x.test", MailRecipients{To: []string{`"not,a list"@x.test`}}},
		{"mailto:Fax%20Desk%20%3Cdesk@x.test%3E", MailRecipients{To: []string{"desk@x.test"}}},
		{"mailto:a@[127.0.0.1]", MailRecipients{To: []string{"a@[127.0.0.1]"}}},
	} {
		got, err := ParseMailto(tc.raw)
		if err != nil {
			t.Errorf("ParseMailto(%q): %v", tc.raw, err)
			continue
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ParseMailto(%q) = %+v, want %+v", tc.raw, got, tc.want)
		}
	}
}

func TestParseMailtoInvalid(t *testing.T) {
	many := "mailto:" + strings.TrimSuffix(strings.Repeat("a@x.test,", MaxMailRecipients+1), ",")
	for _, tc := range []struct {
		raw, want string
	}{
		{"", "no mailto: scheme"},
		{"a@x.test", "no mailto: scheme"},
		{"https://x.test/hook", `scheme "https" is not mailto`},
		{"mail:a@x.test", `scheme "mail" is not mailto`},
		{"mailto:", "no address"},
		{"mailto:?subject=hi", "no address"},
		{"mailto:?cc=", "no address"},
		{"mailto:a@x.test,", "empty address"},
		{"mailto:,a@x.test", "empty address"},
		{"mailto:a@x.test,,b@x.test", "empty address"},
		{"mailto:not-an-address", "bad address"},
		{"mailto:a@", "bad address"},
		{"mailto:@x.test", "bad address"},
		{"mailto:a@x.test%0D%0ABcc:b@x.test", "bad address"},
		{"mailto:a@x.test?cc=nope", "cc: bad address"},
		{"mailto:a@x.test?bcc=a@x.test%0AX-Evil:%201", "bcc: bad address"},
		{"mailto:a%zz@x.test", "bad percent-encoding"},
		{"mailto:a@x.test?subject=%zz", "subject: bad percent-encoding"},
		{"mailto:a@x.test#frag", "'#' must be percent-encoded"},
		{"mailto://a@x.test", "no '//' part"},
		{many, "at most"},
	} {
		got, err := ParseMailto(tc.raw)
		if err == nil {
			t.Errorf("ParseMailto(%q) = %+v, want error containing %q", tc.raw, got, tc.want)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseMailto(%q) error %q, want it to contain %q", tc.raw, err, tc.want)
		}
	}
}

func TestMailRecipientsAll(t *testing.T) {
	r := MailRecipients{To: []string{"a"}, Cc: []string{"b"}, Bcc: []string{"c"}}
	if got := r.All(); !reflect.DeepEqual(got, []string{"a", "b", "c"}) {
		t.Errorf("All = %v", got)
	}
}
