package module

import (
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
)

// A request's account is found by the key App.AccountKey names, and a secret key that names no
// account is never passed on (it would be stored as the fax's account).
func TestAccountKeys(t *testing.T) {
	t.Setenv("FAXHOOK_TEST_KEY", "tok-a-123")
	accounts := []*Account{{APIKey: "{env.FAXHOOK_TEST_KEY}", Name: "acme"}, {APIKey: "tok-b-456", Name: "bravo"}}
	cases := []struct {
		from, header, value, want string
	}{
		{"bearer", "Authorization", "Bearer tok-a-123", "acme"},
		{"bearer", "Authorization", "bearer  tok-b-456 ", "bravo"},
		{"bearer", "Authorization", "Bearer unknown-token", ""},
		{"bearer", "Authorization", "Basic dG9rLWEtMTIzOg==", ""},
		{"header:x-api-key", "X-Api-Key", "tok-b-456", "bravo"},
		{"header:x-api-key", "X-Api-Key", "someone-else", ""},
		{"header:x-api-key", "Authorization", "Bearer tok-a-123", ""},
	}
	for _, c := range cases {
		k := newAccountKeys(c.from, accounts, caddy.NewReplacer())
		r := httptest.NewRequest("GET", "/v2.1/faxes/1", nil)
		r.Header.Set(c.header, c.value)
		if got := k.of(r); got != c.want {
			t.Errorf("account_key %s, %s: %q: account %q, want %q", c.from, c.header, c.value, got, c.want)
		}
	}
	// HTTP Basic: the user name is the key, and names an account by its Name when it has one.
	k := newAccountKeys("", []*Account{{APIKey: "key-a", Name: "acme"}, {APIKey: "key-b"}}, caddy.NewReplacer())
	for user, want := range map[string]string{"key-a": "acme", "key-b": "key-b", "key-c": "key-c"} {
		r := httptest.NewRequest("GET", "/v2.1/faxes/1", nil)
		r.SetBasicAuth(user, "secret")
		if got := k.of(r); got != want {
			t.Errorf("basic user %s: account %q, want %q", user, got, want)
		}
	}
}

func TestAccountKeyValidation(t *testing.T) {
	for _, bad := range []string{"token", "header:", "header:Authorization", "header:X Key"} {
		if err := validateAccountKey(bad); err == nil {
			t.Errorf("account_key %q accepted", bad)
		}
	}
	for _, good := range []string{"", "basic", "bearer", "header:X-Api-Key"} {
		if err := validateAccountKey(good); err != nil {
			t.Errorf("account_key %q: %v", good, err)
		}
	}
	cases := []struct {
		accounts []*Account
		polls    bool
		want     string
	}{
		{[]*Account{{APIKey: "{env.K}"}}, false, "name is empty"},
		{[]*Account{{APIKey: "k1", Name: "a"}, {APIKey: "k2", Name: "a"}}, false, "listed twice"},
		{[]*Account{{APIKey: "k1", Name: "a"}, {APIKey: "k1", Name: "b"}}, false, "another account's too"},
		{[]*Account{{APIKey: "k1", Name: "a", PollSecret: "s"}}, true, "authenticates with the account's key"},
		{[]*Account{{APIKey: "k1", Name: "a b"}}, false, "without colons or white space"},
	}
	for _, c := range cases {
		err := validateAccounts(c.accounts, c.polls, true)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("accounts %+v: error %v, want one saying %q", c.accounts, err, c.want)
		}
	}
	// A bearer key may hold any characters; names need none of the API key's rules.
	if err := validateAccounts([]*Account{{APIKey: "ab:c d", Name: "acme"}}, false, true); err != nil {
		t.Errorf("a bearer key with a colon: %v", err)
	}
}
