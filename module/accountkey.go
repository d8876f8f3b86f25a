package module

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/caddyserver/caddy/v2"
)

// Where a request's account key comes from (App.AccountKey).
const (
	// AccountKeyBasic reads the user name of the request's HTTP Basic credentials: Phaxio's API
	// key, an identifier (the API secret, the password, is never read).
	AccountKeyBasic = "basic"
	// AccountKeyBearer reads the token of an `Authorization: Bearer` header, as APIs that take
	// an API key as a bearer token (Telnyx, Sinch with a key) are called. The key is a secret.
	AccountKeyBearer = "bearer"
	// accountKeyHeader prefixes a header name ("header:X-Api-Key"): the key is that header's
	// value, a secret.
	accountKeyHeader = "header:"
)

// accountKeys finds the account of a request from its credentials (App.AccountKey). It is
// built at provisioning, from the accounts of one config, and never changes.
type accountKeys struct {
	// from is AccountKeyBasic, AccountKeyBearer, or "header:" and the header's name.
	from string
	// ids maps an account's key, as a request carries it (placeholders replaced), to the
	// account's id: its Name, else its APIKey.
	ids map[string]string
}

// secret reports whether the key is a secret (a bearer token or a header's value), which
// faxhook must never store or show: the account's Name stands for it.
func (k *accountKeys) secret() bool { return k.from != "" && k.from != AccountKeyBasic }

// of returns the id of the account that r's credentials name, or "" for none. With HTTP Basic
// keys, a user name that no account lists is returned as it is (it may name an account of a
// later config; the tracker keeps it only when it names a configured one); a secret key that no
// account lists is never returned.
func (k *accountKeys) of(r *http.Request) string {
	if k == nil {
		return APIKeyOf(r)
	}
	var key string
	switch {
	case !k.secret():
		key = APIKeyOf(r)
	case k.from == AccountKeyBearer:
		auth := r.Header.Get("Authorization")
		if len(auth) > 7 && strings.EqualFold(auth[:7], "bearer ") {
			key = strings.TrimSpace(auth[7:])
		}
	default:
		key = strings.TrimSpace(r.Header.Get(strings.TrimPrefix(k.from, accountKeyHeader)))
	}
	if key == "" {
		return ""
	}
	if id, ok := k.ids[key]; ok {
		return id
	}
	if k.secret() {
		return ""
	}
	return key
}

// newAccountKeys resolves the accounts' keys (placeholders replaced, for secret keys) for
// finding a request's account.
func newAccountKeys(from string, accounts []*Account, repl *caddy.Replacer) *accountKeys {
	k := &accountKeys{from: normalAccountKey(from), ids: make(map[string]string, len(accounts))}
	for _, ac := range accounts {
		key := ac.APIKey
		if k.secret() {
			key = repl.ReplaceKnown(key, "")
		}
		k.ids[key] = ac.id()
	}
	return k
}

// normalAccountKey returns App.AccountKey in its canonical form: "basic" for "", header names
// canonicalised.
func normalAccountKey(from string) string {
	switch {
	case from == "":
		return AccountKeyBasic
	case strings.HasPrefix(from, accountKeyHeader):
		return accountKeyHeader + http.CanonicalHeaderKey(strings.TrimSpace(strings.TrimPrefix(from, accountKeyHeader)))
	}
	return from
}

// validateAccountKey checks App.AccountKey.
func validateAccountKey(from string) error {
	switch {
	case from == "", from == AccountKeyBasic, from == AccountKeyBearer:
		return nil
	case strings.HasPrefix(from, accountKeyHeader):
		name := strings.TrimSpace(strings.TrimPrefix(from, accountKeyHeader))
		if name == "" || strings.ContainsAny(name, " \t\r\n:") {
			return fmt.Errorf("account_key: %q is not a header name", name)
		}
		if strings.EqualFold(name, "Authorization") {
			return fmt.Errorf("account_key: for the Authorization header, say basic or bearer")
		}
		return nil
	}
	return fmt.Errorf("account_key: %q is not one of basic, bearer or header NAME", from)
}

// id is the name an account goes by in what faxhook stores and shows (job labels, the admin
// API, metrics, e-mails): its Name, else its APIKey.
func (ac *Account) id() string {
	if ac.Name != "" {
		return ac.Name
	}
	return ac.APIKey
}

// AccountOf returns the account that request r to the fax service authenticated as (see
// App.AccountKey and Account.Name), or "": what the handler records in Capture.APIKey.
func (a *App) AccountOf(r *http.Request) string {
	if a == nil {
		return APIKeyOf(r)
	}
	return a.accountKeys.of(r)
}
