// Package module is faxhook's Caddy app (`faxhook`): its configuration, the Badger store shared
// across config reloads, the tracker that turns observed fax states into Phaxio v2.1 events, and
// the dispatcher's lifecycle. The HTTP handler that observes traffic lives in package handler.
package module

import (
	"cmp"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/faxhook/caddy-faxhook/module/profile"
	"github.com/faxhook/caddy-faxhook/module/render"
	"github.com/faxhook/caddy-faxhook/queue"
	"github.com/faxhook/caddy-faxhook/queue/httpsend"
	"github.com/faxhook/caddy-faxhook/queue/mailsend"
	"github.com/faxhook/caddy-faxhook/queue/ssrf"
)

func init() {
	caddy.RegisterModule(new(App))
}

// App is the `faxhook` Caddy app. It owns the durable queue and delivers the webhooks that the
// faxhook HTTP handlers observe. Configure it with the `faxhook` global option in a Caddyfile or
// under apps.faxhook in JSON.
type App struct {
	// Storage is where tracked faxes and webhook jobs are kept: the directory of the embedded
	// Badger database (default: the `faxhook` folder in Caddy's data directory; one directory
	// can be open in one Caddy process at a time), or a PostgreSQL URL, postgres://… or
	// postgresql://…, for a fleet of Caddy instances that share one queue (see Postgres).
	// Placeholders are replaced: write the URL as `{env.FAXHOOK_DSN}`, since it may hold a
	// password; faxhook never logs it or shows it.
	Storage string `json:"storage,omitempty"`

	// Postgres tunes the PostgreSQL store when Storage is a postgres:// URL (fleet mode: several
	// Caddy instances share one queue). Write the URL as a placeholder, `{env.FAXHOOK_DSN}`, so
	// that its password stays out of the saved config; faxhook never logs or shows it.
	Postgres *PostgresConfig `json:"postgres,omitempty"`

	// Token is the webhook token that signs every HTTP webhook (X-Phaxio-Signature). Use a
	// runtime placeholder such as `{env.FAXHOOK_TOKEN}` so the secret stays out of the saved
	// config. Empty: webhooks are sent unsigned.
	Token string `json:"token,omitempty"`

	// StandardWebhooks adds Standard Webhooks signatures (webhook-id, webhook-timestamp,
	// webhook-signature) to HTTP webhooks, besides X-Phaxio-Signature: every entry's secret
	// signs the webhooks to its URL prefixes (all HTTP webhooks when it has none). See
	// StandardWebhooksConfig.
	StandardWebhooks []StandardWebhooksConfig `json:"standard_webhooks,omitempty"`

	// SentURLs are the webhook URLs for sent faxes that did not name their own callback_url.
	SentURLs []string `json:"sent_urls,omitempty"`

	// ReceivedURLs are the webhook URLs for received faxes whose number has no URL of its own.
	ReceivedURLs []string `json:"received_urls,omitempty"`

	// RetrySchedule is the delay before each retry of a failed webhook; one attempt plus one per
	// entry are made, then the job is dead. Default: Phaxio's ladder, 5m 10m 20m 30m and twelve
	// times 6h (16 retries). At most MaxRetries (100) entries, each positive.
	RetrySchedule []caddy.Duration `json:"retry_schedule,omitempty"`

	// Timeout bounds each delivery attempt. Default 30s.
	Timeout caddy.Duration `json:"timeout,omitempty"`

	// SyncWrites makes every stored job wait for fsync, so a job survives power loss and not only
	// a crash of Caddy. A send's callback_url, which survives a crash of Caddy from the moment
	// the client gets its answer (send journal), is fsynced with the next batch of observations,
	// within about 25 ms. The dispatcher leases jobs in memory, and its records of attempt
	// outcomes are never fsynced on their own: a power loss may undo the last of them, and those
	// webhooks are attempted again (delivery is at-least-once). Default true.
	SyncWrites *bool `json:"sync_writes,omitempty"`

	// Workers is how many deliveries may be under way at once: 1 to MaxWorkers (1024). Default
	// 16. Each worker holds an attempt's memory and a connection, and the dispatcher leases as
	// many jobs again ahead of them (over PostgreSQL up to 15 times as many for receivers that
	// answer fast, within 32 MiB of payloads), so the bound keeps a typo from reserving gigabytes.
	Workers int `json:"workers,omitempty"`

	// Health configures destination health (see HealthConfig): after 5 consecutive failures a
	// destination is down and gets one probe every 30s until it answers, then its backlog is
	// delivered at once. Default on; `"off": true` keeps Phaxio's plain ladder.
	Health *HealthConfig `json:"health,omitempty"`

	// PerHost is how many deliveries to one destination (scheme, host and port) may be under way
	// at once, so that a slow or hanging receiver cannot hold every worker: 1 to MaxPerHost
	// (1024). Default 4. A value above Workers is allowed and acts as Workers.
	PerHost int `json:"per_host,omitempty"`

	// DeliveredRetention is how long delivered jobs (with their attempt logs) are kept. Default
	// 7 days; a negative value keeps them forever.
	DeliveredRetention caddy.Duration `json:"delivered_retention,omitempty"`

	// DeadRetention is how long dead jobs are kept for inspection and replay. Default 30 days; a
	// negative value keeps them forever.
	DeadRetention caddy.Duration `json:"dead_retention,omitempty"`

	// Inflight enables the inflight events of sent faxes, transmitting_page (for every page of
	// every recipient) and retry_scheduled (each time a recipient's retry count rises). Off by
	// default, as at Phaxio; fax_completed is always sent.
	Inflight bool `json:"inflight,omitempty"`

	// MaxRecipients is the most recipients a sent fax may have and still get inflight events;
	// a fax with more gets only its fax_completed (logged, and counted in
	// faxhook_fax_events_capped_total). It bounds the memory and storage one fax can take, since
	// every inflight event carries the whole fax object. Default 1000, at most 100000.
	MaxRecipients int `json:"max_recipients,omitempty"`

	// MaxEvents is the most inflight events that one observation of a fax (a response of the
	// fax service, or a poll answer) may enqueue. When an observation implies more, or more than
	// 1 MiB of event payload, its inflight events are left out (logged, and counted in
	// faxhook_fax_events_capped_total); the fax's later inflight events and its fax_completed
	// are sent as usual. Default 1000, at most 100000.
	MaxEvents int `json:"max_events,omitempty"`

	// Numbers maps a receiving phone number (E.164, e.g. `+15551234567`) to the webhook URLs of
	// faxes received on it. They win over the URL the fax service reports for the number and over
	// ReceivedURLs.
	Numbers map[string][]string `json:"numbers,omitempty"`

	// Accounts give API keys of the fax service their own webhook settings (token, URLs,
	// numbers, inflight), as Phaxio keeps them per account; see Account. A fax sent with an
	// API key no account lists uses the settings above.
	Accounts []*Account `json:"accounts,omitempty"`

	// AccountKey says where faxhook reads the key that names a request's account (see
	// Accounts): `basic` (default), the user name of the request's HTTP Basic credentials, as
	// Phaxio's API keys; `bearer`, the token of an `Authorization: Bearer` header, as APIs that
	// take their API key as a bearer token are called (Telnyx, Sinch with a key); or
	// `header:NAME`, the value of header NAME (Caddyfile: `account_key header NAME`). A bearer
	// token or a header's value is a secret: each account then needs a Name, which is what
	// faxhook stores and shows (job labels, the admin API, metrics, e-mails), and its APIKey,
	// best a placeholder such as `{env.ACME_FAX_KEY}`, is never stored, logged or shown; the
	// poller calls the fax service about the account's faxes with that key.
	AccountKey string `json:"account_key,omitempty"`

	// WebhookVersion is the Phaxio webhook version of HTTP webhooks: `2.1` (default), `2` or
	// `1` (Phaxio's spellings `2.1.0`, `2.0.0` and `1.0.0` are accepted too). v2.1 sends the
	// fields fax and event_type; v2 sends success, is_test, direction and the v2 fax object in
	// fax; v1 sends success, is_test, direction, the v1 fax object in fax, metadata (received
	// faxes) and message; v1 and v2 name a received fax's PDF part `filename`. Versions below 2.1
	// have no inflight events: Inflight with a global version of 1 or 2 is a configuration error.
	// E-mail (mailto:) webhooks are the same in every version.
	WebhookVersion string `json:"webhook_version,omitempty"`

	// NumberVersions gives phone numbers (E.164) a webhook version of their own, which wins over
	// WebhookVersion for faxes received on the number (to_number) and faxes sent from it
	// (caller_id). A number below 2.1 gets no inflight events even when Inflight is on.
	NumberVersions map[string]string `json:"number_versions,omitempty"`

	// Poll lets faxhook call the fax service's API itself: to poll faxes in flight, discover
	// received faxes and fetch received faxes' PDFs. Its requests are built by the profile (see
	// Mapping). Without it, a received fax's PDF is fetched through the route and with the
	// credentials of the client request that revealed the fax, kept in memory only (see Via).
	Poll *PollConfig `json:"poll,omitempty"`

	// Mapping describes a fax service whose API is not shaped like Phaxio's: its routes, where
	// each fax field lives in its JSON, its vocabularies and its callback field. The handlers
	// classify and read requests and responses with it, and the poller and the PDF fetch build
	// their requests from its routes. Default: the Phaxio v2.1 profile (routes …/faxes,
	// …/faxes/{id}, …/faxes/{id}/file, …/phone_numbers; envelope {"success","data"}).
	Mapping *profile.Mapping `json:"mapping,omitempty"`
	// ShippedProfile names a mapping shipped with faxhook, for a fax service whose public API it
	// describes, instead of writing Mapping: "sinch_v3" (Sinch Fax API v3; see
	// profile.ShippedNames). Only the credentials remain to configure (Poll). Not together with
	// Mapping.
	ShippedProfile string `json:"profile,omitempty"`

	// AllowPrivate lists destination ranges (CIDRs or IPs) that HTTP webhooks may reach although
	// they are loopback, private, link-local or otherwise internal. By default every such
	// destination is refused at dial time (an SSRF guard: callback URLs come from API clients),
	// including DNS names that resolve to one; the job dies at once with a clear attempt log.
	AllowPrivate []string `json:"allow_private,omitempty"`

	// SMTP configures delivery of `mailto:` webhooks. Without it, mailto: URLs are refused.
	SMTP *SMTPConfig `json:"smtp,omitempty"`

	// MaxFileSize bounds the PDF of a received fax that faxhook fetches and attaches (bytes):
	// 1 byte to MaxFileSizeLimit (256 MiB), since the file is held in memory and stored with
	// every job of the fax. A larger file is left out of the webhook, with an error in the log.
	// Default 20 MiB.
	MaxFileSize int64 `json:"max_file_size,omitempty"`

	// MinFreeSpace is the free space (bytes) that the storage directory's file system must keep.
	// Below it faxhook stops writing to its storage, before the disk is full (Badger writes
	// through memory maps, and a write into a full file system would crash Caddy): the fax API
	// is still proxied, faxhook logs an error, sets faxhook_storage_degraded to 1 and emits the
	// faxhook_storage_full event; recording and delivery resume, with faxhook_storage_ok, once
	// there is space again. Caddy also starts on a full disk, with faxhook degraded. Default
	// 64 MiB (two memtable flushes and a 20 MiB PDF, the most Badger may write at once);
	// between 32 MiB and 1 TiB. It is raised to MaxFileSize plus 32 MiB when that is more, since a
	// received fax's PDF is written at once. It is set when the storage is opened: a reload that keeps the
	// storage directory keeps the reserve.
	MinFreeSpace int64 `json:"min_free_space,omitempty"`

	ctx      caddy.Context
	log      *zap.Logger
	observer *observer // parses the handlers' captures with this config's profile
	dir      string
	eng      *engine
	hasRef   bool
	token    string
	sched    []time.Duration
	timeout  time.Duration
	poll     *pollSettings
	// accountKeys finds a request's account (AccountOf).
	accountKeys *accountKeys
	guard       *ssrf.Guard
	mail        *mailsend.Sender
	events      *eventsTarget
	// standard and standardSecrets are StandardWebhooks parsed, and its secrets for redaction.
	standard        []httpsend.StandardRule
	standardSecrets []string
	// version and numberVersions are WebhookVersion and NumberVersions, parsed.
	version        render.Version
	numberVersions map[string]render.Version
}

// SMTPConfig is the mail server that delivers `mailto:` webhooks.
type SMTPConfig struct {
	// Server is the SMTP server as host:port, e.g. `smtp.example.com:587`.
	Server string `json:"server"`
	// Username enables SMTP AUTH; empty means none.
	Username string `json:"username,omitempty"`
	// Password is the SMTP password; use a placeholder such as `{env.SMTP_PASSWORD}`. It is never
	// logged.
	Password string `json:"password,omitempty"`
	// From is the sender address, e.g. `Faxhook <fax@example.com>`.
	From string `json:"from"`
	// TLS is the TLS policy: `starttls` (required; default), `opportunistic` (STARTTLS when
	// offered) or `implicit` (TLS from the first byte, usually port 465).
	TLS string `json:"tls,omitempty"`
	// Timeout bounds one delivery attempt. Default 30s.
	Timeout caddy.Duration `json:"timeout,omitempty"`
}

// Interface guards.
var (
	_ caddy.App          = (*App)(nil)
	_ caddy.Provisioner  = (*App)(nil)
	_ caddy.Validator    = (*App)(nil)
	_ caddy.CleanerUpper = (*App)(nil)
)

// CaddyModule returns the Caddy module information.
func (*App) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "faxhook", New: func() caddy.Module { return new(App) }}
}

// Provision resolves defaults and opens (or shares) the store. It starts no delivery: Provision
// also runs for `caddy validate`.
func (a *App) Provision(ctx caddy.Context) error {
	a.ctx = ctx
	a.log = ctx.Logger()
	repl := caddy.NewReplacer()
	spec, err := a.storageSpec(repl)
	if err != nil {
		return err
	}
	a.dir = spec.key
	a.token = repl.ReplaceKnown(a.Token, "")
	if a.Token != "" && a.token == "" {
		a.log.Warn("token is empty after replacing placeholders; webhooks will be sent unsigned", zap.String("token_config", redactPlaceholder(a.Token)))
	}
	a.sched = queue.DefaultSchedule
	if len(a.RetrySchedule) > 0 {
		a.sched = make([]time.Duration, len(a.RetrySchedule))
		for i, d := range a.RetrySchedule {
			a.sched[i] = time.Duration(d)
		}
	}
	a.timeout = 30 * time.Second
	if a.Timeout > 0 {
		a.timeout = time.Duration(a.Timeout)
	}
	if err := a.Validate(); err != nil {
		return err
	}
	if a.standard, a.standardSecrets, err = standardRules(a.StandardWebhooks, repl); err != nil {
		return err
	}
	a.version, a.numberVersions, err = a.versions()
	if err != nil {
		return err
	}
	if a.MaxFileSize == 0 {
		a.MaxFileSize = 20 << 20
	}
	prof := profile.PhaxioV21
	if a.Mapping != nil {
		if prof, err = a.Mapping.Profile(); err != nil {
			return err
		}
	}
	if a.ShippedProfile != "" {
		m, err := profile.Shipped(a.ShippedProfile)
		if err != nil {
			return fmt.Errorf("profile: %w", err)
		}
		if prof, err = m.Profile(); err != nil {
			return fmt.Errorf("profile %s: %w", a.ShippedProfile, err)
		}
	}
	a.observer = newObserver(prof)
	a.accountKeys = newAccountKeys(a.AccountKey, a.Accounts, caddy.NewReplacer())
	if p := a.Poll; p != nil {
		a.poll = &pollSettings{
			upstream: strings.TrimSuffix(p.Upstream, "/"),
			key:      repl.ReplaceKnown(p.APIKey, ""), secret: repl.ReplaceKnown(p.APISecret, ""),
			interval: time.Duration(p.Interval), concurrency: p.Concurrency, disabled: p.Disabled,
			rate: p.MaxRate,
		}
		for name, v := range p.Headers {
			if a.poll.headers == nil {
				a.poll.headers = map[string]string{}
			}
			a.poll.headers[name] = repl.ReplaceKnown(v, "")
		}
		if a.poll.interval == 0 {
			a.poll.interval = 10 * time.Second
		}
		if a.poll.concurrency == 0 {
			a.poll.concurrency = 4
		}
	}
	allow, err := ssrf.ParseAllow(a.AllowPrivate)
	if err != nil {
		return fmt.Errorf("allow_private: %w", err)
	}
	a.guard = ssrf.New(allow)
	if c := a.SMTP; c != nil {
		a.mail, err = mailsend.New(mailsend.Options{
			Host: c.Server, Username: repl.ReplaceKnown(c.Username, ""), Password: repl.ReplaceKnown(c.Password, ""),
			From: c.From, TLS: mailsend.TLSPolicy(c.TLS), Timeout: time.Duration(c.Timeout),
		})
		if err != nil {
			return fmt.Errorf("smtp: %w", err)
		}
	}
	if err := registerMetrics(ctx.GetMetricsRegistry()); err != nil {
		return err
	}
	spec.syncWrites = a.SyncWrites == nil || *a.SyncWrites
	spec.minFree = a.reserve()
	eng, err := loadEngine(spec, a.log)
	if err != nil {
		return err
	}
	a.eng, a.hasRef = eng, true
	a.events = eng.ev.subscribe(ctx, a.log)
	return nil
}

// storageSpec resolves Storage: a PostgreSQL URL (after replacing placeholders such as
// {env.FAXHOOK_DSN}), or the directory of the embedded store, by default `faxhook` in Caddy's
// data directory.
func (a *App) storageSpec(repl *caddy.Replacer) (storageSpec, error) {
	if dsn := repl.ReplaceKnown(a.Storage, ""); IsPostgresDSN(dsn) {
		if err := a.Postgres.validate(dsn); err != nil {
			return storageSpec{}, err
		}
		return storageSpec{key: RedactDSN(dsn), dsn: strings.TrimSpace(dsn), postgres: a.Postgres}, nil
	}
	if a.Postgres != nil {
		return storageSpec{}, errors.New("postgres options are set, but storage is not a postgres:// URL (is its placeholder empty?)")
	}
	dir := a.Storage
	if dir == "" {
		dir = filepath.Join(caddy.AppDataDir(), "faxhook")
	}
	if strings.Contains(dir, "://") {
		return storageSpec{}, fmt.Errorf("storage %q: not a directory, and the only database URLs faxhook knows are postgres:// and postgresql://", RedactDSN(dir))
	}
	abs, err := filepath.Abs(filepath.Clean(dir))
	if err != nil {
		return storageSpec{}, fmt.Errorf("resolving storage directory %q: %w", dir, err)
	}
	return storageSpec{key: abs, dir: abs}, nil
}

// reserve is the free space the storage must keep: min_free_space (or its default), raised to
// cover a received fax's PDF of max_file_size written at once, with the floor of Badger's own
// writes on top (see queue.MinFreeSpaceFloor).
func (a *App) reserve() int64 {
	return max(cmp.Or(a.MinFreeSpace, queue.DefaultMinFreeSpace), a.MaxFileSize+queue.MinFreeSpaceFloor)
}

// Validate checks the configuration; every error names the option at fault. Count and size
// options are bounded (see MaxWorkers and its neighbours) so that a typo such as
// `workers 100000000` fails `caddy validate` instead of reserving gigabytes at `caddy run`.
func (a *App) Validate() error {
	for _, u := range a.SentURLs {
		if err := ValidateURL(u); err != nil {
			return fmt.Errorf("sent_url %q: %w", u, err)
		}
	}
	for _, u := range a.ReceivedURLs {
		if err := ValidateURL(u); err != nil {
			return fmt.Errorf("received_url %q: %w", u, err)
		}
	}
	if n := len(a.RetrySchedule); n > MaxRetries {
		return fmt.Errorf("retry_schedule: %d entries is too many; allowed: 1 to %d", n, MaxRetries)
	}
	for i, d := range a.RetrySchedule {
		if d <= 0 {
			return fmt.Errorf("retry_schedule: entry %d is %s; every delay must be positive", i+1, time.Duration(d))
		}
	}
	if a.Timeout < 0 {
		return fmt.Errorf("timeout: %s is negative", time.Duration(a.Timeout))
	}
	if err := CheckCount("workers", int64(a.Workers), MaxWorkers, "16"); err != nil {
		return err
	}
	if err := CheckCount("per_host", int64(a.PerHost), MaxPerHost, "4"); err != nil {
		return err
	}
	if err := a.Health.Validate(); err != nil {
		return err
	}
	if err := validateNumbers(a.Numbers); err != nil {
		return err
	}
	if err := validateAccountKey(a.AccountKey); err != nil {
		return err
	}
	if err := validateAccounts(a.Accounts, a.Poll != nil, normalAccountKey(a.AccountKey) != AccountKeyBasic); err != nil {
		return err
	}
	if _, _, err := a.versions(); err != nil {
		return err
	}
	if err := CheckCount("max_recipients", int64(a.MaxRecipients), MaxRecipientsLimit, strconv.Itoa(defaultMaxRecipients)); err != nil {
		return err
	}
	if err := CheckCount("max_events", int64(a.MaxEvents), MaxEventsLimit, strconv.Itoa(defaultMaxEvents)); err != nil {
		return err
	}
	if err := CheckCount("max_file_size", a.MaxFileSize, MaxFileSizeLimit, "20 MiB"); err != nil {
		return err
	}
	if err := queue.ValidateMinFreeSpace(a.MinFreeSpace); err != nil {
		return fmt.Errorf("min_free_space: %w", err)
	}
	if a.Mapping != nil {
		if err := a.Mapping.Validate(); err != nil {
			return err
		}
	}
	if err := validateStandardWebhooks(a.StandardWebhooks); err != nil {
		return err
	}
	if a.ShippedProfile != "" {
		if a.Mapping != nil {
			return errors.New("profile and mapping: set one of them, not both")
		}
		if _, err := profile.Shipped(a.ShippedProfile); err != nil {
			return fmt.Errorf("profile: %w", err)
		}
	}
	if p := a.Poll; p != nil {
		u, err := url.Parse(p.Upstream)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("poll upstream %q: want an http(s) URL of the fax API root", p.Upstream)
		}
		if p.Interval < 0 {
			return fmt.Errorf("poll interval: %s is negative", time.Duration(p.Interval))
		}
		for name := range p.Headers {
			if !validHeaderName(name) {
				return fmt.Errorf("poll header %q: not a valid header name", name)
			}
		}
		if err := CheckCount("poll concurrency", int64(p.Concurrency), MaxPollConcurrency, "4"); err != nil {
			return err
		}
		if err := CheckCount("poll max_rate", int64(p.MaxRate), MaxPollRate, strconv.Itoa(DefaultPollMaxRate)); err != nil {
			return err
		}
	}
	return nil
}

// Start hands this config's delivery settings to the shared engine and makes sure its dispatcher
// runs. On a reload the new config starts before the old one stops; the newest settings win.
func (a *App) Start() error {
	if a.eng == nil {
		return errors.New("faxhook app started without being provisioned")
	}
	s := settings{
		token: a.token, schedule: a.sched, timeout: a.timeout, workers: a.Workers,
		sentURLs: a.SentURLs, receivedURLs: a.ReceivedURLs, numberURLs: a.Numbers,
		version: a.version, numberVersions: a.numberVersions,
		inflight: a.Inflight, maxRecipients: a.MaxRecipients, maxEvents: a.MaxEvents, poll: a.poll, maxFileSize: a.MaxFileSize,
		guard: a.guard, mail: a.mail, perHost: a.PerHost, profile: a.Profile(),
		deliveredRetention: time.Duration(a.DeliveredRetention), deadRetention: time.Duration(a.DeadRetention),
		standard: a.standard, standardSecrets: a.standardSecrets,
	}
	s.health = a.Health.options()
	var err error
	if s.accounts, err = accountSettings(&s, a.Accounts, a.accountKeys, caddy.NewReplacer()); err != nil {
		return err
	}
	return a.eng.start(s, a.log)
}

// Stop does nothing: the engine outlives configs and stops when the last config using its storage
// is cleaned up.
func (a *App) Stop() error { return nil }

// Cleanup releases this config's reference to the shared engine.
func (a *App) Cleanup() error {
	if !a.hasRef {
		return nil
	}
	a.hasRef = false
	a.eng.ev.drop(a.events)
	_, err := engines.Delete(a.dir)
	if err != nil {
		return fmt.Errorf("releasing faxhook storage %s: %w", a.dir, err)
	}
	return nil
}

// versions parses WebhookVersion and NumberVersions. Inflight events exist only in v2.1, so
// inflight on with a global version of 1 or 2 is an error (the operator asked for two things
// that contradict each other); a number's own older version only keeps that number's faxes from
// getting inflight events.
func (a *App) versions() (render.Version, map[string]render.Version, error) {
	v, err := render.ParseVersion(a.WebhookVersion)
	if err != nil {
		return v, nil, fmt.Errorf("webhook_version: %w", err)
	}
	if a.Inflight && !v.Inflight() {
		return v, nil, fmt.Errorf("inflight: webhook_version %s has no inflight events (only 2.1 has them); turn inflight off or use webhook_version 2.1", v)
	}
	var nums map[string]render.Version
	for n, s := range a.NumberVersions {
		if !strings.HasPrefix(n, "+") || len(n) < 8 {
			return v, nil, fmt.Errorf("number %q: not an E.164 number (+ and digits)", n)
		}
		nv, err := render.ParseVersion(s)
		if err != nil {
			return v, nil, fmt.Errorf("number %s: webhook_version: %w", n, err)
		}
		if nums == nil {
			nums = map[string]render.Version{}
		}
		nums[n] = nv
	}
	return v, nums, nil
}

// ValidateURL checks that a webhook URL is one faxhook can deliver to: http or https with a host
// that is a name or an IP address in standard form (not a numeric form such as 2130706434 or
// 0x7f.1, see queue.CheckHostForm), or mailto with at least one valid address. It is
// queue.ParseTarget's verdict.
func ValidateURL(raw string) error {
	_, err := queue.ParseTarget(raw)
	return err
}

// validHeaderName reports whether name is an HTTP header name (an RFC 9110 token).
func validHeaderName(name string) bool {
	if name == "" {
		return false
	}
	for _, c := range name {
		if c > '~' || c <= ' ' || strings.ContainsRune(`"(),/:;<=>?@[\]{}`, c) {
			return false
		}
	}
	return true
}

// redactPlaceholder shows a placeholder's name but never a literal secret.
func redactPlaceholder(s string) string {
	if strings.HasPrefix(s, "{") && strings.HasSuffix(s, "}") {
		return s
	}
	return "REDACTED"
}
