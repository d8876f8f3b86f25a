package console

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
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

// changeSettings takes the settings form (sent and received URLs, one per line; inflight;
// webhook version), checks it, answers, and then applies it to the faxhook app's config through
// Caddy's config API, guarded by the config's ETag so that a concurrent change is not lost.
func (c *Console) changeSettings(w http.ResponseWriter, r *http.Request) error {
	f := r.PostForm
	base := "http://" + c.adminAddress() + "/config/apps/faxhook"
	cfg, etag, err := getConfig(r.Context(), base)
	if err != nil {
		return c.acted(w, r, Prefix+"settings", "", err)
	}
	// The page shows URLs with their credentials replaced by REDACTED@; such a URL, sent back
	// unchanged, stands for the configured one, credentials and all.
	configured := map[string]string{}
	for _, key := range []string{"sent_urls", "received_urls"} {
		list, _ := cfg[key].([]any)
		for _, v := range list {
			if u, ok := v.(string); ok {
				configured[queue.RedactURL(u)] = u
			}
		}
	}
	lines := func(name string) ([]string, error) {
		var out []string
		for _, l := range strings.Split(f.Get(name), "\n") {
			if l = strings.TrimSpace(l); l == "" {
				continue
			}
			if u, ok := configured[l]; ok {
				l = u
			} else if strings.Contains(l, "REDACTED@") {
				return nil, fmt.Errorf("%s: %s hides credentials this page cannot know; give the URL with its credentials, or change it in the config", strings.ReplaceAll(name, "_", " "), l)
			}
			if err := module.ValidateURL(l); err != nil {
				return nil, fmt.Errorf("%s: %s: %w", strings.ReplaceAll(name, "_", " "), queue.RedactURL(l), err)
			}
			out = append(out, l)
		}
		return out, nil
	}
	sent, err := lines("sent_urls")
	if err != nil {
		return c.acted(w, r, Prefix+"settings", "", err)
	}
	received, err := lines("received_urls")
	if err != nil {
		return c.acted(w, r, Prefix+"settings", "", err)
	}
	version := f.Get("webhook_version")
	switch version {
	case "2.1", "2", "1":
	default:
		return c.acted(w, r, Prefix+"settings", "", fmt.Errorf("webhook version %q: want 2.1, 2 or 1", version))
	}
	inflight := f.Get("inflight") == "on"
	if inflight && version != "2.1" {
		return c.acted(w, r, Prefix+"settings", "", fmt.Errorf("inflight events exist only in webhook version 2.1"))
	}
	set := func(key string, v any, empty bool) {
		if empty {
			delete(cfg, key)
		} else {
			cfg[key] = v
		}
	}
	set("sent_urls", sent, len(sent) == 0)
	set("received_urls", received, len(received) == 0)
	set("inflight", true, !inflight)
	set("webhook_version", version, version == "2.1")
	body, err := json.Marshal(cfg)
	if err != nil {
		return c.acted(w, r, Prefix+"settings", "", fmt.Errorf("encoding the faxhook config: %w", err))
	}
	go patchConfig(base, etag, body)
	return c.acted(w, r, Prefix+"settings", "Change submitted to Caddy's config API; the settings below show it once Caddy has reloaded.", nil)
}

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
