package module

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/caddyserver/caddy/v2"

	"github.com/faxhook/caddy-faxhook/queue"
	"github.com/faxhook/caddy-faxhook/queue/httpsend"
	"github.com/faxhook/caddy-faxhook/queue/sign"
)

// StandardWebhooksConfig is one `standard_webhooks` entry: a Standard Webhooks secret and the
// webhook URLs it signs. Its HTTP webhooks get the headers webhook-id ("msg_" and the job's ID,
// the same on every attempt), webhook-timestamp (the attempt's Unix seconds) and
// webhook-signature ("v1," and the base64 HMAC-SHA256 of id.timestamp.body), besides
// X-Phaxio-Signature. mailto: webhooks are not affected.
type StandardWebhooksConfig struct {
	// Secret is the signing secret, `whsec_` followed by the key in base64, as Svix and the
	// Standard Webhooks libraries print it. Use a placeholder such as `{env.FAXHOOK_SWH_SECRET}`
	// so the secret stays out of the saved config; faxhook never logs or shows it.
	Secret string `json:"secret"`
	// URLPrefixes limit the entry to webhook URLs starting with one of them (compared with the
	// URL less any user:password@ part, which a prefix must not hold), e.g. `https://app.example.com/hooks/`. Empty: every
	// HTTP webhook. A URL takes the secrets of the entries with its longest matching prefix;
	// several entries with that prefix give several signatures (key rotation).
	URLPrefixes []string `json:"url_prefixes,omitempty"`
}

// ValidateStandardWebhooks checks one standard_webhooks entry: a secret that holds no
// placeholder must parse (a placeholder is checked once replaced, when the config is
// provisioned), and each prefix must be the start of an http or https URL. Its errors name the
// option and never show the secret.
func ValidateStandardWebhooks(c StandardWebhooksConfig) error {
	if !strings.Contains(c.Secret, "{") {
		if _, err := sign.ParseStandardSecret(c.Secret); err != nil {
			return fmt.Errorf("standard_webhooks: %w", err)
		}
	}
	for _, p := range c.URLPrefixes {
		if !strings.HasPrefix(p, "http://") && !strings.HasPrefix(p, "https://") {
			return fmt.Errorf("standard_webhooks: URL prefix %q: want the start of an http or https URL (mailto: webhooks are not signed)", queue.RedactURL(p))
		}
		if u, err := url.Parse(p); err != nil || u.User != nil {
			return fmt.Errorf("standard_webhooks: URL prefix %q: want the start of a URL without user:password@ (prefixes match the URL less its credentials)", queue.RedactURL(p))
		}
	}
	return nil
}

// validateStandardWebhooks checks every standard_webhooks entry (ValidateStandardWebhooks).
func validateStandardWebhooks(cfgs []StandardWebhooksConfig) error {
	for i, c := range cfgs {
		if err := ValidateStandardWebhooks(c); err != nil {
			return fmt.Errorf("%w (entry %d)", err, i+1)
		}
	}
	return nil
}

// standardRules replaces the placeholders of the standard_webhooks secrets and parses them into
// the HTTP sender's rules; it returns the replaced secrets too, for the redactor. A secret that
// is empty or invalid once replaced is an error that names the entry and its placeholder, never
// the secret.
func standardRules(cfgs []StandardWebhooksConfig, repl *caddy.Replacer) ([]httpsend.StandardRule, []string, error) {
	var rules []httpsend.StandardRule
	var secrets []string
	for i, c := range cfgs {
		secret := repl.ReplaceKnown(c.Secret, "")
		k, err := sign.ParseStandardSecret(secret)
		if err != nil {
			return nil, nil, fmt.Errorf("standard_webhooks (entry %d, secret %s): %w", i+1, redactPlaceholder(c.Secret), err)
		}
		secrets = append(secrets, secret, strings.TrimPrefix(strings.TrimSpace(secret), sign.StandardSecretPrefix))
		prefixes := c.URLPrefixes
		if len(prefixes) == 0 {
			prefixes = []string{""}
		}
		for _, p := range prefixes {
			rules = append(rules, httpsend.StandardRule{Prefix: p, Keys: []sign.StandardKey{k}})
		}
	}
	return rules, secrets, nil
}
