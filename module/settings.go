package module

import (
	"cmp"
	"time"

	"github.com/faxhook/caddy-faxhook/module/profile"
	"github.com/faxhook/caddy-faxhook/module/profile/fax"
	"github.com/faxhook/caddy-faxhook/module/render"
	"github.com/faxhook/caddy-faxhook/queue"
	"github.com/faxhook/caddy-faxhook/queue/httpsend"
	"github.com/faxhook/caddy-faxhook/queue/mailsend"
	"github.com/faxhook/caddy-faxhook/queue/ssrf"
)

// settings are the delivery settings of the newest started config.
type settings struct {
	token        string
	schedule     []time.Duration
	timeout      time.Duration
	workers      int
	sentURLs     []string
	receivedURLs []string
	numberURLs   map[string][]string
	inflight     bool
	// version is the global webhook version; numberVersions a number's own (see versionOf).
	version        render.Version
	numberVersions map[string]render.Version
	// maxRecipients and maxEvents bound the inflight events of one fax (see App.MaxRecipients
	// and App.MaxEvents); zero means the default.
	maxRecipients int
	maxEvents     int
	poll          *pollSettings
	// profile builds the poller's and the PDF fetch's requests; nil means Phaxio v2.1.
	profile     profile.Profile
	maxFileSize int64
	guard       *ssrf.Guard
	mail        *mailsend.Sender
	perHost     int
	// deliveredRetention and deadRetention: zero means the queue's defaults, negative forever.
	deliveredRetention time.Duration
	deadRetention      time.Duration
	// standard are the Standard Webhooks rules of the HTTP sender (App.StandardWebhooks), and
	// standardSecrets their secrets as configured, which the redactor scrubs.
	standard        []httpsend.StandardRule
	standardSecrets []string
	// accounts holds each configured account's settings (see accountSettings), by API key;
	// account is the API key of the account these settings are of, "" for the app's.
	accounts map[string]*settings
	account  string
	// ownStandard: an account's own Standard Webhooks rules (Account.StandardWebhooks).
	ownStandard bool
	// metrics: the account's deliveries are counted with its API key as a label (Account.Metrics).
	metrics bool
	// health configures destination health (App.Health).
	health queue.Health
}

// Defaults of App.MaxRecipients and App.MaxEvents.
const (
	defaultMaxRecipients = 1000
	defaultMaxEvents     = 1000
)

// recipientCap is the most recipients a sent fax may have and still get inflight events.
func (s *settings) recipientCap() int { return cmp.Or(s.maxRecipients, defaultMaxRecipients) }

// fax is the profile that builds requests to the fax service.
func (s *settings) fax() profile.Profile { return cmp.Or(s.profile, profile.PhaxioV21) }

// eventCap is the most inflight events one observation of one fax may enqueue.
func (s *settings) eventCap() int { return cmp.Or(s.maxEvents, defaultMaxEvents) }

// versionOf returns the webhook version of a fax's HTTP webhooks: the version of its number,
// the one it was received on (to_number) or, for a sent fax, sent from (caller_id), when that
// number has one of its own (`number … { webhook_version … }`), else the global one. Accounts,
// when they come, slot in between: a number's version, then the fax's account's, then the
// global one.
func (s *settings) versionOf(f *fax.Fax) render.Version {
	num := f.CallerID
	if f.Direction == fax.DirectionReceived {
		num = f.ToNumber
	}
	if num != nil {
		if v, ok := s.numberVersions[*num]; ok {
			return v
		}
	}
	return s.version
}
