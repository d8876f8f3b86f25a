// Package caddyfile parses faxhook's Caddyfile syntax: the `faxhook` global option, which
// configures the faxhook app, and the `faxhook` handler directive, which is ordered after
// `encode` so that it wraps `reverse_proxy` (and `handle` blocks containing it).
//
//	{
//		faxhook {
//			storage        /var/lib/caddy/faxhook
//			token          {env.FAXHOOK_TOKEN}
//			standard_webhooks {env.FAXHOOK_SWH_SECRET}                             # every HTTP webhook
//			standard_webhooks {env.APP2_SWH_SECRET} https://app2.example.com/hooks/ # these URLs instead
//			sent_url       https://example.com/phaxio/sent
//			received_url   https://example.com/phaxio/received
//			retry_schedule 5m 10m 20m 30m 6h
//			timeout        30s
//			sync_writes    on
//			workers        16
//			per_host       4
//			health {       # or: health off (Phaxio's plain ladder)
//				failures       5
//				probe_interval 30s
//			}
//			delivered_retention 168h
//			dead_retention 720h
//			inflight       on
//			max_recipients 1000
//			max_events     1000
//			webhook_version 2.1 # or 2, or 1 (also 2.1.0, 2.0.0, 1.0.0)
//			number         +15551234567 https://example.com/phaxio/line1
//			number         +15551234568 https://example.com/phaxio/line2 {
//				webhook_version 1 # this number's faxes get v1 webhooks
//			}
//			max_file_size  20MiB
//			min_free_space 64MiB
//			allow_private  10.0.0.0/8
//			mapping        /etc/caddy/otherfax-mapping.json # only for non-Phaxio APIs
//			profile        sinch_v3                         # or a shipped mapping, instead
//			smtp {
//				server   smtp.example.com:587
//				username faxhook
//				password {env.SMTP_PASSWORD}
//				from     "Faxhook <fax@example.com>"
//				tls      starttls
//			}
//			poll {
//				upstream    http://127.0.0.1:8090/v2.1
//				credentials {env.FAX_API_KEY} {env.FAX_API_SECRET}
//				header      Authorization "Bearer {env.FAX_TOKEN}" # e.g. for a mapped API
//				interval    10s
//				concurrency 4
//			}
//		}
//	}
//
//	fax.example.com {
//		faxhook {
//			max_capture 1MiB
//		}
//		reverse_proxy 127.0.0.1:8090
//	}
package caddyfile

import (
	"bytes"
	"encoding/json"
	"os"
	"strconv"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/dustin/go-humanize"

	"github.com/faxhook/caddy-faxhook/handler"
	"github.com/faxhook/caddy-faxhook/module"
	"github.com/faxhook/caddy-faxhook/module/profile"
	"github.com/faxhook/caddy-faxhook/module/render"
	"github.com/faxhook/caddy-faxhook/queue"
	"github.com/faxhook/caddy-faxhook/queue/ssrf"
)

func init() {
	httpcaddyfile.RegisterGlobalOption("faxhook", parseGlobal)
	httpcaddyfile.RegisterHandlerDirective("faxhook", parseDirective)
	httpcaddyfile.RegisterDirectiveOrder("faxhook", httpcaddyfile.After, "encode")
}

// parseGlobal parses the `faxhook` global option into the faxhook app's JSON config.
func parseGlobal(d *caddyfile.Dispenser, existing any) (any, error) {
	app := new(module.App)
	if existing != nil {
		return nil, d.Err("the faxhook global option may appear only once")
	}
	if err := UnmarshalApp(d, app); err != nil {
		return nil, err
	}
	return httpcaddyfile.App{Name: "faxhook", Value: caddyconfig.JSON(app, nil)}, nil
}

// UnmarshalApp fills app from a `faxhook { … }` global option block.
func UnmarshalApp(d *caddyfile.Dispenser, app *module.App) error {
	d.Next() // the option name
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		opt := d.Val()
		switch opt {
		case "storage":
			if !d.AllArgs(&app.Storage) {
				return d.ArgErr()
			}
		case "mapping":
			m, err := readMapping(d)
			if err != nil {
				return err
			}
			app.Mapping = m
		case "profile":
			if !d.AllArgs(&app.ShippedProfile) {
				return d.ArgErr()
			}
		case "token":
			if !d.AllArgs(&app.Token) {
				return d.ArgErr()
			}
		case "standard_webhooks":
			c, err := standardArgs(d, "")
			if err != nil {
				return err
			}
			app.StandardWebhooks = append(app.StandardWebhooks, c)
		case "sent_url", "received_url":
			urls, err := urlArgs(d, opt)
			if err != nil {
				return err
			}
			if opt == "sent_url" {
				app.SentURLs = append(app.SentURLs, urls...)
			} else {
				app.ReceivedURLs = append(app.ReceivedURLs, urls...)
			}
		case "retry_schedule":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return d.Err("retry_schedule: at least one delay expected")
			}
			for _, a := range args {
				dur, err := caddy.ParseDuration(a)
				if err != nil || dur <= 0 {
					return d.Errf("retry_schedule: %q is not a positive duration", a)
				}
				app.RetrySchedule = append(app.RetrySchedule, caddy.Duration(dur))
			}
		case "timeout":
			dur, err := positiveDuration(d, "timeout")
			if err != nil {
				return err
			}
			app.Timeout = dur
		case "sync_writes":
			on, err := onOff(d, "sync_writes")
			if err != nil {
				return err
			}
			app.SyncWrites = &on
		case "inflight":
			on, err := onOff(d, "inflight")
			if err != nil {
				return err
			}
			app.Inflight = on
		case "number":
			args := d.RemainingArgs()
			version, err := unmarshalNumberBlock(d, args)
			if err != nil {
				return err
			}
			if version != "" {
				if app.NumberVersions == nil {
					app.NumberVersions = map[string]string{}
				}
				app.NumberVersions[args[0]] = version
				if len(args) == 1 {
					continue // a version of its own, the number's URLs as before
				}
			}
			if len(args) < 2 {
				return d.Err("number: want a phone number and at least one URL, or a block with webhook_version")
			}
			if err := validURLs(d, "number "+args[0], args[1:]); err != nil {
				return err
			}
			if app.Numbers == nil {
				app.Numbers = map[string][]string{}
			}
			app.Numbers[args[0]] = append(app.Numbers[args[0]], args[1:]...)
		case "account":
			ac, err := parseAccount(d)
			if err != nil {
				return err
			}
			app.Accounts = append(app.Accounts, ac)
		case "account_key":
			args := d.RemainingArgs()
			switch {
			case len(args) == 1 && (args[0] == module.AccountKeyBasic || args[0] == module.AccountKeyBearer):
				app.AccountKey = args[0]
			case len(args) == 2 && args[0] == "header":
				app.AccountKey = "header:" + args[1]
			default:
				return d.Err("account_key: want basic, bearer, or header NAME")
			}
		case "webhook_version":
			v, err := webhookVersion(d, "webhook_version")
			if err != nil {
				return err
			}
			app.WebhookVersion = v
		case "max_file_size":
			var s string
			if !d.AllArgs(&s) {
				return d.ArgErr()
			}
			n, err := humanize.ParseBytes(s)
			if err != nil || n == 0 || n > module.MaxFileSizeLimit {
				return d.Errf("max_file_size: %q is not a size between 1 byte and %s", s, humanize.IBytes(module.MaxFileSizeLimit))
			}
			app.MaxFileSize = int64(n)
		case "min_free_space":
			var s string
			if !d.AllArgs(&s) {
				return d.ArgErr()
			}
			n, err := humanize.ParseBytes(s)
			if err != nil || n == 0 || n > uint64(queue.MinFreeSpaceCeiling) {
				return d.Errf("min_free_space: %q is not a size between 32MiB and 1TiB", s)
			}
			if err := queue.ValidateMinFreeSpace(int64(n)); err != nil {
				return d.Errf("min_free_space %s: %v", s, err)
			}
			app.MinFreeSpace = int64(n)
		case "allow_private":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return d.Err("allow_private: at least one CIDR or IP expected")
			}
			if _, err := ssrf.ParseAllow(args); err != nil {
				return d.Errf("allow_private: %v", err)
			}
			app.AllowPrivate = append(app.AllowPrivate, args...)
		case "smtp":
			c := new(module.SMTPConfig)
			if err := unmarshalSMTP(d, c); err != nil {
				return err
			}
			app.SMTP = c
		case "postgres":
			p := new(module.PostgresConfig)
			if err := unmarshalPostgres(d, p); err != nil {
				return err
			}
			app.Postgres = p
		case "health":
			h, err := unmarshalHealth(d)
			if err != nil {
				return err
			}
			app.Health = h
		case "poll":
			p := new(module.PollConfig)
			if err := unmarshalPoll(d, p); err != nil {
				return err
			}
			app.Poll = p
		case "per_host":
			n, err := positiveInt(d, "per_host")
			if err != nil {
				return err
			}
			app.PerHost = n
		case "max_recipients":
			n, err := positiveInt(d, "max_recipients")
			if err != nil {
				return err
			}
			app.MaxRecipients = n
		case "max_events":
			n, err := positiveInt(d, "max_events")
			if err != nil {
				return err
			}
			app.MaxEvents = n
		case "delivered_retention", "dead_retention":
			var s string
			if !d.AllArgs(&s) {
				return d.ArgErr()
			}
			var dur time.Duration
			if s == "forever" {
				dur = -1
			} else {
				var err error
				dur, err = caddy.ParseDuration(s)
				if err != nil || dur <= 0 {
					return d.Errf("%s: %q is not a positive duration or forever", opt, s)
				}
			}
			if opt == "delivered_retention" {
				app.DeliveredRetention = caddy.Duration(dur)
			} else {
				app.DeadRetention = caddy.Duration(dur)
			}
		case "workers":
			n, err := positiveInt(d, "workers")
			if err != nil {
				return err
			}
			app.Workers = n
		default:
			return d.Errf("unknown faxhook option %q", opt)
		}
	}
	if v, _ := render.ParseVersion(app.WebhookVersion); app.Inflight && !v.Inflight() {
		return d.Errf("inflight on: webhook_version %s has no inflight events (only 2.1 has them); turn inflight off or use webhook_version 2.1", v)
	}
	return nil
}

// webhookVersion reads the option's one argument, a webhook version (2.1, 2 or 1, or Phaxio's
// 2.1.0, 2.0.0, 1.0.0), and returns it as written.
func webhookVersion(d *caddyfile.Dispenser, name string) (string, error) {
	var s string
	if !d.AllArgs(&s) {
		return "", d.Errf("%s: want one version: 2.1, 2 or 1", name)
	}
	if _, err := render.ParseVersion(s); err != nil {
		return "", d.Errf("%s: %v", name, err)
	}
	return s, nil
}

// unmarshalNumberBlock parses the optional block of a `number PHONE [URL…] { … }` option,
// whose args are given, and returns the number's own webhook version ("" when none).
func unmarshalNumberBlock(d *caddyfile.Dispenser, args []string) (string, error) {
	version := ""
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		switch opt := d.Val(); opt {
		case "webhook_version":
			v, err := webhookVersion(d, "number webhook_version")
			if err != nil {
				return "", err
			}
			version = v
		default:
			return "", d.Errf("unknown number option %q (allowed: webhook_version)", opt)
		}
	}
	if len(args) == 0 {
		return "", d.Err("number: want a phone number")
	}
	return version, nil
}

// onOff reads the option's one argument: on (or true) or off (or false).
func onOff(d *caddyfile.Dispenser, name string) (bool, error) {
	var s string
	if !d.AllArgs(&s) {
		return false, d.ArgErr()
	}
	switch s {
	case "on", "true":
		return true, nil
	case "off", "false":
		return false, nil
	}
	return false, d.Errf("%s: %q is not on or off", name, s)
}

// positiveDuration reads the option's one argument as a positive duration.
func positiveDuration(d *caddyfile.Dispenser, name string) (caddy.Duration, error) {
	var s string
	if !d.AllArgs(&s) {
		return 0, d.ArgErr()
	}
	dur, err := caddy.ParseDuration(s)
	if err != nil || dur <= 0 {
		return 0, d.Errf("%s: %q is not a positive duration", name, s)
	}
	return caddy.Duration(dur), nil
}

// positiveInt reads the option's one argument as a positive whole number.
func positiveInt(d *caddyfile.Dispenser, name string) (int, error) {
	var s string
	if !d.AllArgs(&s) {
		return 0, d.ArgErr()
	}
	n, err := strconv.Atoi(s)
	if err != nil || n <= 0 {
		return 0, d.Errf("%s: %q is not a positive number", name, s)
	}
	return n, nil
}

// unmarshalHealth parses `health off` or a `health { failures N; probe_interval D; off }` block.
func unmarshalHealth(d *caddyfile.Dispenser) (*module.HealthConfig, error) {
	h := new(module.HealthConfig)
	if d.NextArg() {
		if d.Val() != "off" || d.NextArg() {
			return nil, d.Errf("health: want off or a block, not %q", d.Val())
		}
		h.Off = true
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		switch opt := d.Val(); opt {
		case "failures":
			n, err := positiveInt(d, "health failures")
			if err != nil {
				return nil, err
			}
			h.Failures = n
		case "probe_interval":
			dur, err := positiveDuration(d, "health probe_interval")
			if err != nil {
				return nil, err
			}
			h.ProbeInterval = dur
		case "off":
			if d.NextArg() {
				return nil, d.ArgErr()
			}
			h.Off = true
		default:
			return nil, d.Errf("unknown health option %q", opt)
		}
	}
	if err := h.Validate(); err != nil {
		return nil, d.Err(err.Error())
	}
	return h, nil
}

// unmarshalPoll parses a `poll { … }` block.
func unmarshalPoll(d *caddyfile.Dispenser, p *module.PollConfig) error {
	if d.NextArg() {
		return d.ArgErr()
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		opt := d.Val()
		switch opt {
		case "upstream":
			if !d.AllArgs(&p.Upstream) {
				return d.ArgErr()
			}
		case "credentials":
			if !d.AllArgs(&p.APIKey, &p.APISecret) {
				return d.Err("poll credentials: want an API key and an API secret")
			}
		case "header":
			var name, value string
			if !d.AllArgs(&name, &value) {
				return d.Err("poll header: want a header name and a value")
			}
			if p.Headers == nil {
				p.Headers = map[string]string{}
			}
			p.Headers[name] = value
		case "interval":
			dur, err := positiveDuration(d, "poll interval")
			if err != nil {
				return err
			}
			p.Interval = dur
		case "concurrency":
			n, err := positiveInt(d, "poll concurrency")
			if err != nil {
				return err
			}
			p.Concurrency = n
		case "max_rate":
			n, err := positiveInt(d, "poll max_rate")
			if err != nil {
				return err
			}
			p.MaxRate = n
		case "off":
			if d.NextArg() {
				return d.ArgErr()
			}
			p.Disabled = true
		default:
			return d.Errf("unknown poll option %q", opt)
		}
	}
	if p.Upstream == "" {
		return d.Err("poll: upstream is required")
	}
	return nil
}

// unmarshalSMTP parses an `smtp { … }` block.
func unmarshalSMTP(d *caddyfile.Dispenser, c *module.SMTPConfig) error {
	if d.NextArg() {
		return d.ArgErr()
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		opt := d.Val()
		var dst *string
		switch opt {
		case "server":
			dst = &c.Server
		case "username":
			dst = &c.Username
		case "password":
			dst = &c.Password
		case "from":
			dst = &c.From
		case "tls":
			dst = &c.TLS
		case "timeout":
			dur, err := positiveDuration(d, "smtp timeout")
			if err != nil {
				return err
			}
			c.Timeout = dur
			continue
		default:
			return d.Errf("unknown smtp option %q", opt)
		}
		if !d.AllArgs(dst) {
			return d.Errf("smtp %s: one value expected", opt)
		}
	}
	switch c.TLS {
	case "", "starttls", "opportunistic", "implicit":
	default:
		return d.Errf("smtp tls: %q is not starttls, opportunistic or implicit", c.TLS)
	}
	if c.Server == "" || c.From == "" {
		return d.Err("smtp: server and from are required")
	}
	return nil
}

// readMapping reads the JSON mapping file named by a `mapping FILE` option and checks it.
func readMapping(d *caddyfile.Dispenser) (*profile.Mapping, error) {
	var path string
	if !d.AllArgs(&path) {
		return nil, d.Err("mapping: want the path of a JSON mapping file")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, d.Errf("mapping: reading %s: %v", path, err)
	}
	m := new(profile.Mapping)
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(m); err != nil {
		return nil, d.Errf("mapping: %s is not a valid mapping: %v", path, err)
	}
	if err := m.Validate(); err != nil {
		return nil, d.Errf("mapping %s: %v", path, err)
	}
	return m, nil
}

// parseDirective parses the `faxhook` handler directive.
func parseDirective(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	hd := new(handler.Handler)
	if err := UnmarshalHandler(h.Dispenser, hd); err != nil {
		return nil, err
	}
	return hd, nil
}

// UnmarshalHandler fills hd from a `faxhook [{ … }]` directive.
func UnmarshalHandler(d *caddyfile.Dispenser, hd *handler.Handler) error {
	d.Next() // the directive name
	if d.NextArg() {
		return d.ArgErr()
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		switch d.Val() {
		case "max_capture":
			var s string
			if !d.AllArgs(&s) {
				return d.ArgErr()
			}
			n, err := humanize.ParseBytes(s)
			if err != nil || n == 0 || n > handler.MaxCaptureLimit {
				return d.Errf("max_capture: %q is not a size between 1 byte and %s", s, humanize.IBytes(handler.MaxCaptureLimit))
			}
			hd.MaxCapture = int(n)
		case "mapping":
			return d.Err("mapping is an option of the faxhook app now, not of the faxhook directive: " +
				"move it into the global option block, { faxhook { mapping FILE } }")
		default:
			return d.Errf("unknown faxhook subdirective %q", d.Val())
		}
	}
	return nil
}

// unmarshalPostgres parses a `postgres { … }` block of the faxhook global option.
func unmarshalPostgres(d *caddyfile.Dispenser, p *module.PostgresConfig) error {
	if d.NextArg() {
		return d.Errf("postgres: the database goes in storage (storage postgres://…); the block takes max_conns, statement_timeout, journal and instance")
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		opt := d.Val()
		switch opt {
		case "max_conns":
			n, err := positiveInt(d, "postgres max_conns")
			if err != nil {
				return err
			}
			if n > module.MaxPostgresConns {
				return d.Errf("postgres max_conns: %d is too large; allowed: 1 to %d", n, module.MaxPostgresConns)
			}
			p.MaxConns = n
		case "statement_timeout":
			var s string
			if !d.AllArgs(&s) {
				return d.ArgErr()
			}
			dur, err := caddy.ParseDuration(s)
			if err != nil || dur < time.Second {
				return d.Errf("postgres statement_timeout: %q is not a duration of at least 1s", s)
			}
			p.StatementTimeout = caddy.Duration(dur)
		case "journal":
			if !d.AllArgs(&p.Journal) {
				return d.ArgErr()
			}
		case "instance":
			if !d.AllArgs(&p.Instance) {
				return d.ArgErr()
			}
		default:
			return d.Errf("postgres: unknown option %q (allowed: max_conns, statement_timeout, journal, instance)", opt)
		}
	}
	return nil
}

// parseAccount parses `account API_KEY { name NAME; token …; sent_url …; received_url …; number NUMBER
// URL…; inflight on|off; poll_secret SECRET; metrics on|off }`, an account's own webhook settings (see
// module.Account).
func parseAccount(d *caddyfile.Dispenser) (*module.Account, error) {
	ac := &module.Account{}
	if !d.NextArg() {
		return nil, d.Err("account: want the account's API key")
	}
	ac.APIKey = d.Val()
	if d.NextArg() {
		return nil, d.Errf("account %s: unexpected argument %q (options go in a block)", ac.APIKey, d.Val())
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		opt := d.Val()
		switch opt {
		case "token":
			if !d.AllArgs(&ac.Token) {
				return nil, d.Errf("account %s token: want one value", ac.APIKey)
			}
		case "name":
			if !d.AllArgs(&ac.Name) {
				return nil, d.Errf("account %s name: want one value", ac.APIKey)
			}
		case "poll_secret":
			if !d.AllArgs(&ac.PollSecret) {
				return nil, d.Errf("account %s poll_secret: want one value", ac.APIKey)
			}
		case "sent_url", "received_url":
			urls, err := urlArgs(d, "account "+ac.APIKey+" "+opt)
			if err != nil {
				return nil, err
			}
			if opt == "sent_url" {
				ac.SentURLs = append(ac.SentURLs, urls...)
			} else {
				ac.ReceivedURLs = append(ac.ReceivedURLs, urls...)
			}
		case "number":
			args := d.RemainingArgs()
			if len(args) < 2 {
				return nil, d.Errf("account %s number: want a phone number and at least one URL", ac.APIKey)
			}
			if err := validURLs(d, "account "+ac.APIKey+" number "+args[0], args[1:]); err != nil {
				return nil, err
			}
			if ac.Numbers == nil {
				ac.Numbers = map[string][]string{}
			}
			ac.Numbers[args[0]] = append(ac.Numbers[args[0]], args[1:]...)
		case "inflight":
			on, err := onOff(d, "account "+ac.APIKey+" inflight")
			if err != nil {
				return nil, err
			}
			ac.Inflight = &on
		case "metrics":
			on, err := onOff(d, "account "+ac.APIKey+" metrics")
			if err != nil {
				return nil, err
			}
			ac.Metrics = on
		case "standard_webhooks":
			c, err := standardArgs(d, "account "+ac.APIKey+" ")
			if err != nil {
				return nil, err
			}
			ac.StandardWebhooks = append(ac.StandardWebhooks, c)
		case "webhook_version":
			v, err := webhookVersion(d, "account "+ac.APIKey+" webhook_version")
			if err != nil {
				return nil, err
			}
			ac.WebhookVersion = v
		default:
			return nil, d.Errf("account %s: unknown option %q (want name, token, sent_url, received_url, number, inflight, poll_secret, metrics, webhook_version or standard_webhooks)", ac.APIKey, opt)
		}
	}
	return ac, nil
}

// urlArgs reads the remaining arguments as webhook URLs: at least one, each valid. what names
// the option in errors.
func urlArgs(d *caddyfile.Dispenser, what string) ([]string, error) {
	urls := d.RemainingArgs()
	if len(urls) == 0 {
		return nil, d.Errf("%s: at least one URL expected", what)
	}
	return urls, validURLs(d, what, urls)
}

// validURLs checks webhook URLs; what names the option in errors.
func validURLs(d *caddyfile.Dispenser, what string, urls []string) error {
	for _, u := range urls {
		if err := module.ValidateURL(u); err != nil {
			return d.Errf("%s %q: %v", what, u, err)
		}
	}
	return nil
}

// standardArgs reads the arguments of a `standard_webhooks SECRET [URL_PREFIX…]` option, the
// global one or an account's (where names the option's place in errors: "" or "account K ").
func standardArgs(d *caddyfile.Dispenser, where string) (module.StandardWebhooksConfig, error) {
	args := d.RemainingArgs()
	if len(args) == 0 {
		return module.StandardWebhooksConfig{}, d.Errf("%sstandard_webhooks: want a secret (whsec_…, e.g. {env.FAXHOOK_SWH_SECRET}) and optionally URL prefixes", where)
	}
	c := module.StandardWebhooksConfig{Secret: args[0], URLPrefixes: args[1:]}
	if err := module.ValidateStandardWebhooks(c); err != nil {
		return c, d.Errf("%s%v", where, err)
	}
	return c, nil
}
