package console

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/faxhook/caddy-faxhook/module"
	"github.com/faxhook/caddy-faxhook/queue"
)

// A settings change goes through Caddy's config API, as `curl -X PATCH
// localhost:2019/config/apps/faxhook` would: Caddy's running config stays the one source of
// truth, and a Caddyfile reload replaces the change. It is made after the console has answered,
// since the reload it causes waits for the console's own request to end.

// lastChange is the outcome of the latest settings change, shown on the settings page; it
// outlives the reloads the changes cause.
var lastChange struct {
	sync.Mutex
	at      time.Time
	ok      bool
	message string
}

// changeResult records the outcome of a settings change.
func changeResult(ok bool, msg string) {
	lastChange.Lock()
	defer lastChange.Unlock()
	lastChange.at, lastChange.ok, lastChange.message = time.Now(), ok, msg
}

// lastChangeView is the outcome of the latest change for the settings page, nil if none.
func lastChangeView() map[string]any {
	lastChange.Lock()
	defer lastChange.Unlock()
	if lastChange.at.IsZero() {
		return nil
	}
	return map[string]any{"At": lastChange.at, "OK": lastChange.ok, "Message": lastChange.message}
}

// adminAddress is the admin endpoint the console changes settings through.
func (c *Console) adminAddress() string {
	a := c.Admin
	if a == "" {
		a = caddy.DefaultAdminListen
	}
	return strings.TrimPrefix(strings.TrimPrefix(a, "tcp/"), "tcp:")
}

// changeSettings takes a settings form, the global one or an account's (field account: its
// id), checks it, answers, and then applies it to the faxhook app's config through Caddy's
// config API, guarded by the config's ETag so that a concurrent change is not lost. The fields:
// sent and received URLs, one per line; numbers, one per line ("+15551230000 URL [URL…]");
// inflight and webhook version. An account's empty list, and its "as global" inflight or
// version, leave the setting to the global one.
func (c *Console) changeSettings(w http.ResponseWriter, r *http.Request) error {
	base := "http://" + c.adminAddress() + "/config/apps/faxhook"
	cfg, etag, err := getConfig(r.Context(), base)
	if err != nil {
		return c.acted(w, r, Prefix+"settings", "", err)
	}
	if err := applyForm(cfg, r.PostForm); err != nil {
		return c.acted(w, r, Prefix+"settings", "", err)
	}
	body, err := json.Marshal(cfg)
	if err != nil {
		return c.acted(w, r, Prefix+"settings", "", fmt.Errorf("encoding the faxhook config: %w", err))
	}
	go patchConfig(base, etag, body)
	return c.acted(w, r, Prefix+"settings", "Change submitted to Caddy's config API; the settings below show it once Caddy has reloaded.", nil)
}

// applyForm applies a settings form to cfg, the faxhook app's config as JSON: to its global
// settings, or to the account the form names.
func applyForm(cfg map[string]any, f url.Values) error {
	// The page shows URLs with their credentials replaced by REDACTED@; such a URL, sent back
	// unchanged, stands for the configured one, credentials and all.
	configured := map[string]string{}
	collectURLs(cfg, configured)
	target, what := cfg, "global settings"
	if id := f.Get("account"); id != "" {
		acct, err := findAccount(cfg, id)
		if err != nil {
			return err
		}
		target, what = acct, "account "+id
	}
	restore := func(field, u string) (string, error) {
		if full, ok := configured[u]; ok {
			u = full
		} else if strings.Contains(u, "REDACTED@") {
			return "", fmt.Errorf("%s: %s hides credentials this page cannot know; give the URL with its credentials, or change it in the config", field, u)
		}
		if err := module.ValidateURL(u); err != nil {
			return "", fmt.Errorf("%s: %s: %w", field, queue.RedactURL(u), err)
		}
		return u, nil
	}
	lines := func(name string) ([]string, error) {
		var out []string
		for _, l := range strings.Split(f.Get(name), "\n") {
			if l = strings.TrimSpace(l); l == "" {
				continue
			}
			u, err := restore(strings.ReplaceAll(name, "_", " "), l)
			if err != nil {
				return nil, err
			}
			out = append(out, u)
		}
		return out, nil
	}
	sent, err := lines("sent_urls")
	if err != nil {
		return err
	}
	received, err := lines("received_urls")
	if err != nil {
		return err
	}
	numbers := map[string][]string{}
	for _, l := range strings.Split(f.Get("numbers"), "\n") {
		fields := strings.Fields(l)
		if len(fields) == 0 {
			continue
		}
		n := fields[0]
		if !e164(n) {
			return fmt.Errorf("numbers: %q is not an E.164 number (+ and digits), as each line starts", n)
		}
		if len(fields) == 1 {
			return fmt.Errorf("numbers: %s has no URL", n)
		}
		for _, raw := range fields[1:] {
			u, err := restore("numbers: "+n, raw)
			if err != nil {
				return err
			}
			numbers[n] = append(numbers[n], u)
		}
	}
	account := f.Get("account") != ""
	version := f.Get("webhook_version")
	switch version {
	case "2.1", "2", "1":
	case "":
		if !account {
			return fmt.Errorf("webhook version: want 2.1, 2 or 1")
		}
	default:
		return fmt.Errorf("webhook version %q: want 2.1, 2 or 1", version)
	}
	effective := version
	if effective == "" { // an account's, left to the global one
		effective, _ = cfg["webhook_version"].(string)
	}
	var inflight *bool
	switch v := f.Get("inflight"); {
	case v == "on": // the global form's checkbox, or an account's choice
		inflight = ptr(true)
	case v == "off" || !account:
		inflight = ptr(false)
	}
	if globalInflight, _ := cfg["inflight"].(bool); (inflight != nil && *inflight || inflight == nil && globalInflight) &&
		effective != "" && effective != "2.1" && effective != "2.1.0" {
		return fmt.Errorf("%s: inflight events exist only in webhook version 2.1", what)
	}
	set := func(key string, v any, empty bool) {
		if empty {
			delete(target, key)
		} else {
			target[key] = v
		}
	}
	set("sent_urls", sent, len(sent) == 0)
	set("received_urls", received, len(received) == 0)
	set("numbers", numbers, len(numbers) == 0)
	if account {
		set("inflight", inflight, inflight == nil)
		set("webhook_version", version, version == "")
	} else {
		set("inflight", true, !*inflight)
		set("webhook_version", version, version == "2.1")
	}
	return nil
}

// findAccount returns the entry of the account with id (its name, else its API key, with
// placeholders replaced) in the faxhook app's config.
func findAccount(cfg map[string]any, id string) (map[string]any, error) {
	list, _ := cfg["accounts"].([]any)
	repl := caddy.NewReplacer()
	for _, v := range list {
		acct, ok := v.(map[string]any)
		if !ok {
			continue
		}
		name, _ := acct["name"].(string)
		key, _ := acct["api_key"].(string)
		if name != "" && repl.ReplaceAll(name, "") == id || name == "" && repl.ReplaceAll(key, "") == id {
			return acct, nil
		}
	}
	return nil, fmt.Errorf("account %s is not in Caddy's config (changed meanwhile?)", id)
}

// collectURLs adds every webhook URL of the app's config (global, numbers, accounts') to m,
// keyed by the URL as the page shows it.
func collectURLs(cfg map[string]any, m map[string]string) {
	add := func(v any) {
		list, _ := v.([]any)
		for _, x := range list {
			if u, ok := x.(string); ok {
				m[queue.RedactURL(u)] = u
			}
		}
	}
	add(cfg["sent_urls"])
	add(cfg["received_urls"])
	if nums, ok := cfg["numbers"].(map[string]any); ok {
		for _, v := range nums {
			add(v)
		}
	}
	if list, ok := cfg["accounts"].([]any); ok {
		for _, v := range list {
			if acct, ok := v.(map[string]any); ok {
				collectURLs(acct, m)
			}
		}
	}
}

// e164 reports whether n looks like an E.164 number, as faxhook's config wants it.
func e164(n string) bool {
	return strings.HasPrefix(n, "+") && len(n) >= 8 && strings.Trim(n[1:], "0123456789") == ""
}

func ptr[T any](v T) *T { return &v }

// getConfig reads the faxhook app's config and its ETag from Caddy's config API.
func getConfig(ctx context.Context, url string) (map[string]any, string, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, "", fmt.Errorf("reading the config through Caddy's config API: %w", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if resp.StatusCode != http.StatusOK {
		return nil, "", fmt.Errorf("reading the config through Caddy's config API: %s: %s", resp.Status, bytes.TrimSpace(b))
	}
	cfg := map[string]any{}
	if err := json.Unmarshal(b, &cfg); err != nil || cfg == nil {
		return nil, "", fmt.Errorf("reading the config through Caddy's config API: the faxhook app's config is not an object (%v)", err)
	}
	return cfg, resp.Header.Get("Etag"), nil
}

// patchConfig replaces the faxhook app's config through Caddy's config API and records the
// outcome for the settings page.
func patchConfig(url, etag string, body []byte) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPatch, url, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if etag != "" {
		req.Header.Set("If-Match", etag)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		changeResult(false, "Caddy's config API: "+err.Error())
		return
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		changeResult(false, fmt.Sprintf("Caddy refused the change: %s: %s", resp.Status, bytes.TrimSpace(b)))
		return
	}
	changeResult(true, "Applied through Caddy's config API.")
}
