package module

import (
	"encoding/json"
	"maps"
	"net/http"
	"slices"
	"strings"

	"github.com/faxhook/caddy-faxhook/queue"
)

// settingsView is the answer of GET /faxhook/settings: the effective webhook settings, the app's
// and each account's, with where each value comes from. It holds no secret: whether a token is
// set, never its value; URLs without credentials.
type settingsView struct {
	Global        webhookSettingsView   `json:"global"`
	Accounts      []webhookSettingsView `json:"accounts,omitempty"`
	RetrySchedule []string              `json:"retry_schedule"`
	// LearnedNumbers are the numbers' webhook URLs faxhook learnt from the fax API's traffic
	// (phone number objects with a callback_url, e.g. POST /phone_numbers); configured number
	// URLs win over them.
	LearnedNumbers []numberView `json:"learned_numbers,omitempty"`
}

// webhookSettingsView is one set of webhook settings (the app's, or an account's).
type webhookSettingsView struct {
	// Account is the account's id (name, or API key when that is an identifier); "" for the
	// app's settings.
	Account        string       `json:"account,omitempty"`
	SentURLs       []string     `json:"sent_urls"`
	ReceivedURLs   []string     `json:"received_urls"`
	Numbers        []numberView `json:"numbers,omitempty"`
	Inflight       bool         `json:"inflight"`
	WebhookVersion string       `json:"webhook_version"`
	TokenSet       bool         `json:"token_set"`
	// Source says, per setting that an account can leave to the app, where the value comes
	// from: "account" or "global".
	Source map[string]string `json:"source,omitempty"`
}

// numberView is one receiving number's webhook URLs.
type numberView struct {
	Number string   `json:"number"`
	URLs   []string `json:"urls"`
	Source string   `json:"source"` // "config"; "global" for an account's number the app's config gives; "traffic"
}

// settings answers GET /faxhook/settings.
func (a *adminAPI) settings(w http.ResponseWriter, r *http.Request) error {
	e, err := a.engine(r)
	if err != nil {
		return err
	}
	cfg := e.cfg.Load()
	out := settingsView{Global: webhookView(cfg, nil)}
	for _, d := range cfg.schedule {
		out.RetrySchedule = append(out.RetrySchedule, d.String())
	}
	for _, id := range slices.Sorted(maps.Keys(cfg.accounts)) {
		out.Accounts = append(out.Accounts, webhookView(cfg.accounts[id], cfg))
	}
	err = e.store.View(func(tx queue.Tx) error {
		return tx.States(prefixNumber, func(key string, v []byte) bool {
			var urls []string
			if json.Unmarshal(v, &urls) == nil {
				out.LearnedNumbers = append(out.LearnedNumbers, numberView{
					Number: strings.TrimPrefix(key, prefixNumber), URLs: redactAll(urls), Source: "traffic"})
			}
			return len(out.LearnedNumbers) < maxPageSize
		})
	})
	if err != nil {
		return storeError("listing the numbers learnt from traffic", err)
	}
	return writeJSON(w, http.StatusOK, out)
}

// webhookView is the view of settings s; base is the app's settings when s is an account's.
func webhookView(s, base *settings) webhookSettingsView {
	v := webhookSettingsView{Account: s.account, SentURLs: redactAll(s.sentURLs), ReceivedURLs: redactAll(s.receivedURLs),
		Inflight: s.inflight, WebhookVersion: s.version.String(), TokenSet: s.token != ""}
	for _, n := range slices.Sorted(maps.Keys(s.numberURLs)) {
		src := "config"
		if base != nil && slices.Equal(s.numberURLs[n], base.numberURLs[n]) {
			src = "global" // an account's number as the app's config gives it
		}
		v.Numbers = append(v.Numbers, numberView{Number: n, URLs: redactAll(s.numberURLs[n]), Source: src})
	}
	if base != nil {
		from := func(same bool) string {
			if same {
				return "global"
			}
			return "account"
		}
		v.Source = map[string]string{
			"sent_urls":       from(slices.Equal(s.sentURLs, base.sentURLs)),
			"received_urls":   from(slices.Equal(s.receivedURLs, base.receivedURLs)),
			"inflight":        from(s.inflight == base.inflight),
			"webhook_version": from(s.version == base.version),
			"token":           from(s.token == base.token),
		}
	}
	return v
}

// redactAll returns urls without their credentials.
func redactAll(urls []string) []string {
	out := make([]string, len(urls))
	for i, u := range urls {
		out[i] = queue.RedactURL(u)
	}
	return out
}
