package module

import (
	"errors"
	"hash/maphash"
	"net/http"
	"sync"

	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"

	"github.com/faxhook/caddy-faxhook/module/profile"
	"github.com/faxhook/caddy-faxhook/queue"
)

// Capture is one exchange with the fax API as the HTTP handler saw it, unparsed: the handler
// classifies the request with the app's profile (App.Profile), taps what the request says and
// keeps a bounded copy of the response; the app parses it, off the request path (App.Submit)
// or, for a creating request, before the client gets its answer (App.RecordCapture).
type Capture struct {
	// Route is the profile's classification of the request.
	Route profile.Route
	// FaxID is the fax id in the request's path, as the upstream spells it; empty if none. It
	// names the fax in logs when its response cannot be read.
	FaxID string
	// Path is the request's path (and query), for logs and to recognise an answer that did not
	// change since the last one on the same path.
	Path string
	// CallbackURLs holds the callback URL that a send, resend or phone-number request carried
	// (at most one today), unchecked: the app keeps only URLs it can deliver to.
	CallbackURLs []string
	// APIKey is the API key the request authenticated with (its HTTP Basic user; see
	// APIKeyOf), or ""; the app keeps it only when it names a configured account (see
	// Account). It is an identifier: the API secret is never captured.
	APIKey string
	// Via describes the request (its listener, Host, API root and credential headers; see
	// ViaOf) for a status or list request, so that the PDF of a received fax it reveals can be
	// fetched the same way when no poll upstream is configured; nil otherwise. The app holds it
	// in memory only, for at most 15 minutes.
	Via *Via
	// TraceParent is the W3C traceparent of the span Caddy's `tracing` handler started for the
	// request (see TraceOf), "" when the site is not traced. The faxes the request reveals keep
	// it, and their webhooks' deliveries are traced in it.
	TraceParent string
	// Tracer is the tracer provider of that span when it records, else nil; the app traces
	// delivery attempts with the newest one it was given.
	Tracer trace.TracerProvider
	// Body is the response body, decoded (no Content-Encoding).
	Body []byte
	// Release, if set, is called once Body is no longer needed (the handler's buffer goes back
	// to its pool).
	Release func()
}

// release hands the capture's buffer back.
func (c *Capture) release() {
	if c.Release != nil {
		c.Release()
		c.Release = nil
	}
}

// observer parses captures with one config's profile. It remembers, per request path, a hash
// of the last answer that was recorded, so that a client polling an unchanged fax costs a hash
// instead of a parse and a transaction.
type observer struct {
	prof profile.Profile
	seen seenCache
}

func newObserver(p profile.Profile) *observer {
	o := &observer{prof: p}
	o.seen.seed = maphash.MakeSeed()
	return o
}

// seenCache is direct-mapped: bounded memory, and a collision only costs a parse.
type seenCache struct {
	mu    sync.Mutex
	seed  maphash.Seed
	slots [4096]struct{ key, body uint64 }
}

func (c *seenCache) hashes(key string, body []byte) (k, b uint64) {
	return maphash.String(c.seed, key), maphash.Bytes(c.seed, body)
}

func (c *seenCache) unchanged(k, b uint64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := &c.slots[k%uint64(len(c.slots))]
	return s.key == k && s.body == b
}

func (c *seenCache) remember(k, b uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.slots[k%uint64(len(c.slots))] = struct{ key, body uint64 }{k, b}
}

// observe parses a capture into what it tells the tracker, skipping a status or list answer
// identical to the last one recorded for its path. It releases the capture's buffer.
func (ob *observer) observe(c *Capture, log *zap.Logger) *Observation {
	defer c.release()
	if c.Route != profile.RouteStatus && c.Route != profile.RouteList {
		return ob.parse(c, log)
	}
	k, b := ob.seen.hashes(c.Path, c.Body)
	if ob.seen.unchanged(k, b) {
		return nil // the same answer as last time, which is recorded already
	}
	o := ob.parse(c, log)
	if o != nil {
		o.OnRecorded = func() { ob.seen.remember(k, b) }
	}
	return o
}

// parse turns a capture into an observation through the profile; nil when it says nothing.
func (ob *observer) parse(c *Capture, log *zap.Logger) *Observation {
	if c.Route == profile.RouteNumbers {
		nums, err := ob.prof.Numbers(c.Body)
		if err != nil {
			log.Debug("no phone numbers in response", zap.String("path", c.Path), zap.Error(err))
			return nil
		}
		// A provisioning request's callback_url applies when the response does not echo it.
		if cb := validURLs(log, c.CallbackURLs); len(cb) > 0 && len(nums) == 1 && !nums[0].HasCallback {
			nums[0].CallbackURL, nums[0].HasCallback = cb[0], true
		}
		if len(nums) == 0 {
			return nil
		}
		return &Observation{Numbers: nums}
	}
	objs, err := ob.prof.Faxes(c.Route, c.Body)
	if err != nil {
		// A mapping may convert some faxes of a list and not others: use those it did.
		reportMappingError(log, "fax objects not (all) extracted from response", err, zap.String("path", c.Path),
			zap.String("route", string(c.Route)), zap.String("upstream_fax_id", c.FaxID))
	}
	if len(objs) == 0 {
		return nil
	}
	return &Observation{Faxes: objs, CallbackURLs: validURLs(log, c.CallbackURLs), APIKey: c.APIKey, TraceParent: c.TraceParent}
}

// validURLs keeps the callback URLs faxhook can deliver to and logs the others.
func validURLs(log *zap.Logger, urls []string) []string {
	var out []string
	for _, u := range urls {
		if u == "" {
			continue
		}
		if err := ValidateURL(u); err != nil {
			log.Warn("ignoring callback_url", zap.String("url", queue.RedactURL(u)), zap.Error(err))
			continue
		}
		out = append(out, u)
	}
	return out
}

// Profile is the profile of the fax service this config fronts: the JSON mapping when one is
// configured, else Phaxio v2.1. The handler classifies requests with it.
func (a *App) Profile() profile.Profile {
	if a.observer == nil {
		return profile.PhaxioV21
	}
	return a.observer.prof
}

// WantsVia reports whether the handler should describe status and list requests in
// Capture.Via (see ViaOf): only when no poll upstream is configured, as the PDF of a received
// fax is then fetched the way such a request was made. With a poll upstream, the clients'
// credentials are not kept at all.
func (a *App) WantsVia() bool { return a.poll == nil }

// Submit hands a capture to the app, to be parsed and recorded in the background, off the
// request path; the app then owns c (and calls c.Release). It reports false when the
// observation queue is full or the app is shutting down; the capture is then dropped (logged,
// and counted in faxhook_capture_skipped_total with reason backlog_full) and released.
func (a *App) Submit(c *Capture) bool {
	if a.eng == nil || a.observer == nil {
		c.release()
		return false
	}
	ob, log, eng := a.observer, a.log, a.eng
	eng.delivery.tracer.learn(c.Tracer)
	if !a.eng.obs.submit(len(c.Body), func() *Observation {
		via := c.Via
		o := ob.observe(c, log)
		if o != nil && via != nil {
			// Before the observation is recorded, so before a webhook of its faxes is prepared.
			eng.vias.remember(o.Faxes, via)
		}
		return o
	}) {
		c.release()
		return false
	}
	return true
}

// RecordCapture records what a creating request said (a send's callback_url, with the new id
// from the response) and returns once a crash of Caddy can no longer lose it: it is in the send
// journal, and queued for the tracker ahead of anything observed after it. The handler calls it
// before the client gets the answer. A capture that tells nothing records nothing. c is
// released.
func (a *App) RecordCapture(c *Capture) error {
	if a.eng == nil || a.observer == nil {
		c.release()
		return errors.New("faxhook app is not provisioned")
	}
	a.eng.delivery.tracer.learn(c.Tracer)
	o := a.observer.observe(c, a.log)
	if o == nil {
		return nil
	}
	return a.eng.sends.recordSync(o)
}

// APIKeyOf returns the API key a request to the fax service authenticated with: the user name
// of its HTTP Basic credentials, or "" (none, or longer than an account's key may be). The
// password, Phaxio's API secret, is not read.
func APIKeyOf(r *http.Request) string {
	user, _, ok := r.BasicAuth()
	if !ok || len(user) > maxAPIKey {
		return ""
	}
	return user
}
