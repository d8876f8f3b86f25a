package module

import (
	"fmt"
	"maps"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/faxhook/caddy-faxhook/module/render"
	"github.com/faxhook/caddy-faxhook/queue"
)

// Account holds the webhook settings of one account of the fax service, as Phaxio keeps them
// per account: its webhook token, its global sent and received URLs, its numbers' URLs and
// whether it gets inflight events. A fax belongs to the account whose API key sent it (the
// HTTP Basic user of the send request), or, for a received fax, whose API key first revealed
// it; its events use the account's settings, and what the account leaves unset falls back to
// the app's. A fax that no configured account sent uses the app's settings.
type Account struct {
	// APIKey identifies the account: the user name of the HTTP Basic credentials its clients
	// send to the fax service. It is an identifier, not a secret (the API secret is never
	// kept), and it shows in the admin API's job listings as the job label `account`.
	APIKey string `json:"api_key"`

	// Name is what the account goes by in what faxhook stores and shows: the job label
	// `account` in the admin API, the label of its metrics, the account named in its e-mail
	// webhooks. Default: its APIKey. Required when App.AccountKey is `bearer` or a header, whose
	// keys are secrets; at most 256 bytes, without colons or white space.
	Name string `json:"name,omitempty"`

	// Token is the account's webhook token: it signs the account's HTTP webhooks
	// (X-Phaxio-Signature) instead of the app's Token. Use a placeholder such as
	// `{env.ACME_WEBHOOK_TOKEN}`. Empty: the app's Token.
	Token string `json:"token,omitempty"`

	// SentURLs are the account's webhook URLs for sent faxes that did not name their own
	// callback_url. Empty: the app's SentURLs.
	SentURLs []string `json:"sent_urls,omitempty"`

	// ReceivedURLs are the account's webhook URLs for received faxes whose number has no URL of
	// its own. Empty: the app's ReceivedURLs.
	ReceivedURLs []string `json:"received_urls,omitempty"`

	// Numbers maps the account's receiving phone numbers (E.164) to their webhook URLs. They
	// win over the account's ReceivedURLs; the app's Numbers apply to the account's faxes only
	// for numbers the account does not list.
	Numbers map[string][]string `json:"numbers,omitempty"`

	// Inflight, when set, turns the account's inflight events on or off whatever the app's
	// Inflight says.
	Inflight *bool `json:"inflight,omitempty"`

	// PollSecret is the account's API secret, for the poller (see App.Poll, which it needs):
	// the account's faxes in flight are polled, its received faxes listed and their PDFs
	// fetched with APIKey and PollSecret as HTTP Basic credentials, instead of the poll block's
	// credentials. Use a placeholder such as `{env.ACME_API_SECRET}`; it is never logged.
	PollSecret string `json:"poll_secret,omitempty"`

	// WebhookVersion is the webhook version of the account's HTTP webhooks (2.1, 2 or 1, as
	// App.WebhookVersion); a number's own version (App.NumberVersions) still wins for its
	// faxes. Empty: the app's. Below 2.1 the account's faxes get no inflight events; Inflight
	// on with such a version is a configuration error.
	WebhookVersion string `json:"webhook_version,omitempty"`

	// StandardWebhooks, when set, replace the app's StandardWebhooks for the account's HTTP
	// webhooks (same form: a whsec_ secret, optionally URL prefixes).
	StandardWebhooks []StandardWebhooksConfig `json:"standard_webhooks,omitempty"`

	// Metrics labels the account's delivery attempts in the metric
	// faxhook_account_deliveries_total with its API key. Off by default, so that the number of
	// series stays bounded: at most MaxMetricAccounts accounts may turn it on.
	Metrics bool `json:"metrics,omitempty"`
}

// MaxMetricAccounts bounds how many accounts may have Metrics on: each adds series to
// faxhook_account_deliveries_total.
const MaxMetricAccounts = 100

// MaxAccounts bounds how many accounts one config may list.
const MaxAccounts = 10000

// maxAPIKey is the longest API key faxhook takes from a request as an account's name.
const maxAPIKey = 256

// validateAccounts checks the accounts; every error names the account (by its id: Name or API
// key) and the option at fault. polls tells whether the app has a poll block, secretKeys whether
// the accounts' keys are secrets (App.AccountKey bearer or a header).
func validateAccounts(accounts []*Account, polls, secretKeys bool) error {
	if len(accounts) > MaxAccounts {
		return fmt.Errorf("account: %d accounts is too many; allowed: up to %d", len(accounts), MaxAccounts)
	}
	seen, keys := map[string]bool{}, map[string]bool{}
	metrics := 0
	for i, ac := range accounts {
		if ac == nil || ac.APIKey == "" {
			return fmt.Errorf("account %d: api_key is empty", i+1)
		}
		if secretKeys && ac.Name == "" {
			return fmt.Errorf("account %d: name is empty; with account_key bearer or a header, the key is a secret and each account needs a name to go by", i+1)
		}
		if ac.Metrics {
			if metrics++; metrics > MaxMetricAccounts {
				return fmt.Errorf("account %s metrics: more than %d accounts have metrics on; each adds series to faxhook_account_deliveries_total", ac.id(), MaxMetricAccounts)
			}
		}
		if !secretKeys && (len(ac.APIKey) > maxAPIKey || strings.ContainsAny(ac.APIKey, ": \t\r\n")) {
			return fmt.Errorf("account %q: an API key is at most %d bytes, without colons or white space", ac.APIKey, maxAPIKey)
		}
		if len(ac.Name) > maxAPIKey || strings.ContainsAny(ac.Name, ": \t\r\n") {
			return fmt.Errorf("account %d name %q: a name is at most %d bytes, without colons or white space", i+1, ac.Name, maxAPIKey)
		}
		if seen[ac.id()] {
			return fmt.Errorf("account %q: listed twice", ac.id())
		}
		if keys[ac.APIKey] {
			return fmt.Errorf("account %s: its key is another account's too", ac.id())
		}
		seen[ac.id()], keys[ac.APIKey] = true, true
		for _, u := range ac.SentURLs {
			if err := ValidateURL(u); err != nil {
				return fmt.Errorf("account %s sent_url %q: %w", ac.id(), u, err)
			}
		}
		for _, u := range ac.ReceivedURLs {
			if err := ValidateURL(u); err != nil {
				return fmt.Errorf("account %s received_url %q: %w", ac.id(), u, err)
			}
		}
		if ac.WebhookVersion != "" {
			v, err := render.ParseVersion(ac.WebhookVersion)
			if err != nil {
				return fmt.Errorf("account %s webhook_version: %w", ac.id(), err)
			}
			if ac.Inflight != nil && *ac.Inflight && !v.Inflight() {
				return fmt.Errorf("account %s inflight: webhook_version %s has no inflight events (only 2.1 has them)", ac.id(), v)
			}
		}
		if err := validateStandardWebhooks(ac.StandardWebhooks); err != nil {
			return fmt.Errorf("account %s %w", ac.id(), err)
		}
		if ac.PollSecret != "" && secretKeys {
			return fmt.Errorf("account %s poll_secret: with account_key bearer or a header, the poller authenticates with the account's key itself", ac.id())
		}
		if ac.PollSecret != "" && !polls {
			return fmt.Errorf("account %s poll_secret: the poller is not configured (add a poll block with the upstream)", ac.id())
		}
		if err := validateNumbers(ac.Numbers); err != nil {
			return fmt.Errorf("account %s %w", ac.id(), err)
		}
	}
	return nil
}

// validateNumbers checks a map of numbers to URLs (App.Numbers, Account.Numbers).
func validateNumbers(numbers map[string][]string) error {
	for n, urls := range numbers {
		if !strings.HasPrefix(n, "+") || len(n) < 8 || strings.Trim(n[1:], "0123456789") != "" {
			return fmt.Errorf("number %q: not an E.164 number (+ and digits)", n)
		}
		for _, u := range urls {
			if err := ValidateURL(u); err != nil {
				return fmt.Errorf("number %s %q: %w", n, u, err)
			}
		}
	}
	return nil
}

// accountSettings derives the settings of each account from base (the app's): the account's
// values where it sets them, base's elsewhere; they are keyed by the account's id (Name, else
// API key). Secrets go through repl; an error is a Standard Webhooks secret that is not one once
// replaced. keys tells where accounts' keys come from: with secret keys (a bearer token or a
// header), every account with the poll block polls with its own key.
func accountSettings(base *settings, accounts []*Account, keys *accountKeys, repl *caddy.Replacer) (map[string]*settings, error) {
	if len(accounts) == 0 {
		return nil, nil
	}
	out := make(map[string]*settings, len(accounts))
	for _, ac := range accounts {
		s := *base
		s.accounts, s.account = nil, ac.id()
		if ac.Token != "" {
			s.token = repl.ReplaceKnown(ac.Token, "")
		}
		if len(ac.SentURLs) > 0 {
			s.sentURLs = ac.SentURLs
		}
		if len(ac.ReceivedURLs) > 0 {
			s.receivedURLs = ac.ReceivedURLs
		}
		if len(ac.Numbers) > 0 {
			nums := make(map[string][]string, len(base.numberURLs)+len(ac.Numbers))
			for n, u := range base.numberURLs {
				nums[n] = u
			}
			for n, u := range ac.Numbers {
				nums[n] = u
			}
			s.numberURLs = nums
		}
		if ac.Inflight != nil {
			s.inflight = *ac.Inflight
		}
		s.metrics = ac.Metrics
		if len(ac.StandardWebhooks) > 0 {
			rules, secrets, err := standardRules(ac.StandardWebhooks, repl)
			if err != nil {
				return nil, fmt.Errorf("account %s: %w", ac.APIKey, err)
			}
			s.standard, s.standardSecrets, s.ownStandard = rules, secrets, true
		}
		if v, err := render.ParseVersion(ac.WebhookVersion); err == nil && ac.WebhookVersion != "" {
			s.version = v // validated: see validateAccounts
		}
		switch {
		case base.poll == nil:
		case keys != nil && keys.secret():
			p := *base.poll
			p.account, p.key, p.secret = ac.id(), "", ""
			p.headers = maps.Clone(base.poll.headers)
			if p.headers == nil {
				p.headers = map[string]string{}
			}
			key := repl.ReplaceKnown(ac.APIKey, "")
			if keys.from == AccountKeyBearer {
				p.headers["Authorization"] = "Bearer " + key
			} else {
				p.headers[strings.TrimPrefix(keys.from, accountKeyHeader)] = key
			}
			s.poll = &p
		case ac.PollSecret != "":
			p := *base.poll
			p.account, p.key, p.secret = ac.id(), ac.APIKey, repl.ReplaceKnown(ac.PollSecret, "")
			s.poll = &p
		}
		out[ac.id()] = &s
	}
	return out, nil
}

// forAccount returns the settings that the faxes of the account named apiKey use: its own when
// it is configured, else s.
func (s *settings) forAccount(apiKey string) *settings {
	if a, ok := s.accounts[apiKey]; ok && apiKey != "" {
		return a
	}
	return s
}

// knowsAccount reports whether apiKey names a configured account.
func (s *settings) knowsAccount(apiKey string) bool {
	_, ok := s.accounts[apiKey]
	return ok && apiKey != ""
}

// labelAccount is the job label that names the account of a job's fax (its API key); absent
// for faxes of no configured account. The admin API lists and filters jobs by it.
const labelAccount = render.MetaAccount

// jobRedactor is redactorFor job j's URL, scrubbing also the secrets of j's account (its
// webhook token and poll secret) besides the app's token.
func jobRedactor(cfg *settings, j *queue.Job) redactor {
	r := redactorFor(cfg, j.URL)
	if cfg == nil {
		return r
	}
	if a, ok := cfg.accounts[j.Meta.Get(labelAccount)]; ok {
		r.add(a.token)
		for _, s := range a.standardSecrets {
			r.add(s)
		}
		if a.poll != nil && a.poll != cfg.poll {
			r.add(a.poll.secret)
			for _, v := range a.poll.headers {
				r.add(strings.TrimPrefix(v, "Bearer "))
			}
		}
	}
	return r
}
