package module

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/faxhook/caddy-faxhook/module/profile"
	"github.com/faxhook/caddy-faxhook/module/profile/fax"
	"github.com/faxhook/caddy-faxhook/module/render"
	"github.com/faxhook/caddy-faxhook/queue"
)

// Observation is what a handler (or the poller) saw in one exchange with the fax service.
type Observation struct {
	// Faxes are the fax objects found in the response.
	Faxes []profile.Object
	// CallbackURLs holds the callback_url of a send or resend request; it belongs to the faxes
	// that request created (those in Faxes).
	CallbackURLs []string
	// Numbers are phone number objects found in the response, with their webhook URLs.
	Numbers []profile.Number
	// APIKey is the API key of the request that revealed the faxes (see Capture.APIKey); a fax
	// that has no account yet joins the account it names, if one is configured.
	APIKey string
	// TraceParent is the W3C traceparent of the traced request that revealed the faxes (see
	// Capture.TraceParent); "" for a request that was not traced and for the poller.
	TraceParent string
	// OnRecorded, if set, is called once the observation is durably recorded.
	OnRecorded func()

	journaled *segment // the send journal segment that holds it until it is recorded
	failed    error    // set by record: the store failed before the observation was recorded
	rejected  error    // set by record: part of the observation can never be recorded
}

// trackedFax is the tracker's record of one fax, stored under "fax/<id>".
type trackedFax struct {
	// Fax is the last complete state seen.
	Fax fax.Fax `json:"fax"`
	// Known is true once a complete fax object was seen.
	Known bool `json:"known"`
	// CallbackURLs are the fax's own webhook URLs (from its send or resend request).
	CallbackURLs []string `json:"callback_urls,omitempty"`
	// SeenInFlight is true when faxhook saw the fax before it was complete.
	SeenInFlight bool `json:"seen_in_flight"`
	// Completed is true once fax_completed was enqueued (or decided against, when no URL).
	Completed bool `json:"completed"`
	// Pages holds, per recipient, the highest page announced with transmitting_page.
	Pages map[string]int `json:"pages,omitempty"`
	// Retries holds, per recipient, the highest retry_count announced with retry_scheduled.
	Retries map[string]int `json:"retries,omitempty"`
	// FirstSeen is when faxhook first heard of the fax.
	FirstSeen time.Time `json:"first_seen"`
	// NoInflight is set when the fax has more recipients than max_recipients: it gets no
	// inflight events, only fax_completed.
	NoInflight bool `json:"no_inflight,omitempty"`
	// Account is the API key of the configured account the fax belongs to (see Account); ""
	// for the app's settings. Set once: by the send request, or by the first request that
	// revealed a received fax.
	Account string `json:"account,omitempty"`
	// UpstreamID is the fax's id as the fax service spells it, when that is not the decimal
	// Fax.ID (a mapping derived the id, see profile.DeriveID); the poller and the PDF fetch ask
	// the service with it.
	UpstreamID string `json:"upstream_id,omitempty"`
	// TraceParent is the W3C traceparent of the first traced request that revealed the fax
	// (its send or resend, for a sent fax): every webhook of the fax is delivered in that trace.
	TraceParent string `json:"traceparent,omitempty"`

	// traceLink is the traceparent of the traced request whose observation is being applied,
	// when it is not TraceParent: the webhooks it causes link to it. Not stored.
	traceLink string
}

// Keys of tracker records.
const (
	keySince     = "meta/since"
	prefixFax    = "fax/"    // fax/<id> → trackedFax
	prefixLive   = "live/"   // live/<id> → upstream id ("" if the decimal id) while a fax is not complete (the poller's work list)
	prefixNumber = "number/" // number/<E.164> → JSON list of the number's webhook URLs
)

// tracker keeps each fax's last known state and turns changes into webhook jobs, in the same
// transaction as the new state.
type tracker struct {
	store queue.Store
	cfg   func() *settings   // the newest config's settings: URLs, inflight, caps
	log   func() *zap.Logger // the newest config's logger
	now   func() time.Time   // the clock that stamps first sights, jobs and the start time
	// wake tells the dispatcher that jobs were enqueued (delivery.wake).
	wake func()

	since time.Time // when this storage first started tracking: older completions are history
	// ready is set once since is read: until then (a start on a full disk) record refuses.
	ready atomic.Bool
}

// newTracker returns the tracker of the faxes in store; wake is told of enqueued jobs.
func newTracker(store queue.Store, cfg func() *settings, log func() *zap.Logger, wake func()) *tracker {
	return &tracker{store: store, cfg: cfg, log: log, now: time.Now, wake: wake}
}

// startedAt returns since once init has read it; zero before (a start deferred by a full disk
// reads it later, from another goroutine, so since is read only after ready is seen set).
func (t *tracker) startedAt() time.Time {
	if !t.ready.Load() {
		return time.Time{}
	}
	return t.since
}

// init reads (or records, on first use) the time from which completions are news.
func (t *tracker) init() error {
	err := t.store.Update(func(tx queue.Tx) error {
		v, err := tx.State(keySince)
		if errors.Is(err, queue.ErrNotFound) {
			t.since = t.now().UTC().Truncate(time.Second)
			return tx.PutState(keySince, []byte(t.since.Format(time.RFC3339)))
		}
		if err != nil {
			return fmt.Errorf("reading tracker start time: %w", err)
		}
		t.since, err = time.Parse(time.RFC3339, string(v))
		return err
	})
	if err == nil {
		t.ready.Store(true)
	}
	return err
}

// Bounds on one transaction of observations. Badger refuses a transaction that writes more than
// 15% of its memtable (2.4 MiB with the store's 16 MiB memtables) or about 26,000 keys; a batch
// is committed in as many transactions as these bounds make it, well below that, and a
// transaction that is refused all the same (ErrTooBig) is retried one fax at a time.
const (
	txnBudgetBytes = 512 << 10
	txnBudgetJobs  = 2000
)

// errUnappliable marks an observation that the tracker can never record: its fax's stored
// record cannot be decoded, or recording it alone is still too big for one transaction. It is
// logged and set aside; the observations around it are recorded.
var errUnappliable = errors.New("cannot be recorded")

// unappliable tells an error of one fax or number, which retrying cannot fix, from an error of
// the store (closed, or failing), which fails every fax alike.
func unappliable(err error) bool {
	return errors.Is(err, errUnappliable) || errors.Is(err, queue.ErrTooBig)
}

// item is one thing an observation asks the tracker to record: a phone number or a fax.
type item struct {
	obs *Observation
	num *profile.Number
	fax *profile.Object
}

// record applies a batch of observations in transactions sized to fit, and wakes the dispatcher
// if any job was enqueued. An observation that cannot be recorded (see unappliable) is logged
// and marked rejected; the others are recorded all the same. It returns an error only when the
// store failed: the observations it did not record are then marked failed.
func (t *tracker) record(batch []*Observation) error {
	if !t.ready.Load() {
		err := fmt.Errorf("%w: faxhook starts recording once its storage has space", queue.ErrNoSpace)
		for _, o := range batch {
			o.failed, o.rejected = err, nil
		}
		return err
	}
	cfg := t.cfg()
	now := t.now().UTC()
	var items []item
	for _, o := range batch {
		o.failed, o.rejected = nil, nil
		for i := range o.Numbers {
			items = append(items, item{obs: o, num: &o.Numbers[i]})
		}
		for i := range o.Faxes {
			items = append(items, item{obs: o, fax: &o.Faxes[i]})
		}
	}
	var enqueued []*queue.Job
	var storeErr error
	for i := 0; i < len(items) && storeErr == nil; {
		n, jobs, err := t.commit(cfg, now, items[i:], true)
		switch {
		case err == nil:
			enqueued = append(enqueued, jobs...)
		case !unappliable(err):
			storeErr = err
			for _, it := range items[i:] {
				it.obs.failed = err
			}
			continue
		case n == 1:
			t.reject(items[i], err)
		default:
			// Take the failed transaction's items one at a time, so that one fax that cannot
			// be recorded fails no other.
			for k, it := range items[i : i+n] {
				_, jobs, err := t.commit(cfg, now, []item{it}, false)
				switch {
				case err == nil:
					enqueued = append(enqueued, jobs...)
					continue
				case unappliable(err):
					t.reject(it, err)
					continue
				}
				storeErr = err
				for _, it := range items[i+k:] {
					it.obs.failed = err
				}
				break
			}
		}
		i += n
	}
	for _, o := range batch {
		if o.failed == nil && o.rejected == nil && o.OnRecorded != nil {
			o.OnRecorded()
		}
	}
	countEvents(enqueued)
	log := t.log()
	for _, j := range enqueued {
		log.Info("webhook enqueued", append(jobLogFields(j),
			zap.String("url", queue.RedactURL(j.URL)), zap.String("job", j.ID))...)
	}
	if len(enqueued) > 0 {
		t.wake()
	}
	return storeErr
}

// commit records items in one transaction and returns how many it took (those it recorded, or
// those the failed transaction held). With pack, it takes items until the transaction's budget
// is spent (at least one); without, only the first.
func (t *tracker) commit(cfg *settings, now time.Time, items []item, pack bool) (n int, jobs []*queue.Job, err error) {
	var notes []capNote // reported once committed: Update may run fn more than once
	err = t.store.Update(func(tx queue.Tx) error {
		n, jobs, notes = 0, jobs[:0], notes[:0]
		size := 0
		for n < len(items) && (n == 0 || (pack && size < txnBudgetBytes && len(jobs) < txnBudgetJobs)) {
			it := items[n]
			n++
			if it.num != nil {
				if err := t.applyNumber(tx, *it.num); err != nil {
					return fmt.Errorf("tracking number %s: %w", it.num.PhoneNumber, err)
				}
				size += len(it.num.CallbackURL) + 64
				continue
			}
			js, written, err := t.apply(tx, cfg, now, *it.fax, it.obs, &notes)
			if err != nil {
				return fmt.Errorf("tracking fax %d: %w", it.fax.Fax.ID, err)
			}
			jobs = append(jobs, js...)
			size += written
		}
		return nil
	})
	if err != nil {
		return n, nil, err
	}
	for _, c := range notes {
		c.report(t.log())
	}
	return n, jobs, nil
}

// reject logs an item that can never be recorded and marks its observation rejected.
func (t *tracker) reject(it item, err error) {
	metricRejected.Inc()
	it.obs.rejected = err
	fields := []zap.Field{zap.Error(err)}
	if it.fax != nil {
		fields = append(fields, zap.Int64("fax_id", it.fax.Fax.ID))
	}
	t.log().Error("setting aside an observation that cannot be recorded; other faxes are not affected", fields...)
}

// applyNumber records the webhook URL a phone number object carries.
func (t *tracker) applyNumber(tx queue.Tx, n profile.Number) error {
	if !n.HasCallback {
		return nil
	}
	if n.CallbackURL == "" {
		return tx.DeleteState(prefixNumber + n.PhoneNumber)
	}
	if err := ValidateURL(n.CallbackURL); err != nil {
		t.log().Warn("ignoring a phone number's callback_url", zap.String("number", n.PhoneNumber),
			zap.String("url", queue.RedactURL(n.CallbackURL)), zap.Error(err))
		return nil
	}
	b, _ := json.Marshal([]string{n.CallbackURL})
	return tx.PutState(prefixNumber+n.PhoneNumber, b)
}

// upstreamID returns the id with which the fax service knows the fax with faxhook's id: the
// one its record holds, else the decimal id.
func (t *tracker) upstreamID(id int64) (string, error) {
	uid := strconv.FormatInt(id, 10)
	err := t.store.View(func(tx queue.Tx) error {
		v, err := tx.State(faxKey(id))
		switch {
		case errors.Is(err, queue.ErrNotFound):
			return nil
		case err != nil:
			return err
		}
		var rec trackedFax
		if err := json.Unmarshal(v, &rec); err != nil {
			return fmt.Errorf("decoding tracked state: %w", err)
		}
		if rec.UpstreamID != "" {
			uid = rec.UpstreamID
		}
		return nil
	})
	return uid, err
}

func faxKey(id int64) string  { return prefixFax + strconv.FormatInt(id, 10) }
func liveKey(id int64) string { return prefixLive + strconv.FormatInt(id, 10) }

// apply merges one observed fax object into its record and enqueues the events it implies. It
// returns the jobs it enqueued and about how many bytes it wrote, and adds to notes the inflight
// events it left out.
func (t *tracker) apply(tx queue.Tx, cfg *settings, now time.Time, obj profile.Object, o *Observation, notes *[]capNote) ([]*queue.Job, int, error) {
	key := faxKey(obj.Fax.ID)
	var rec trackedFax
	v, err := tx.State(key)
	stored := v
	isNew := errors.Is(err, queue.ErrNotFound)
	switch {
	case isNew:
		rec.FirstSeen = now
	case err != nil:
		return nil, 0, err
	default:
		if err := json.Unmarshal(v, &rec); err != nil {
			return nil, 0, fmt.Errorf("decoding tracked state: %w: %w", errUnappliable, err)
		}
	}
	if len(o.CallbackURLs) > 0 && len(rec.CallbackURLs) == 0 {
		rec.CallbackURLs = o.CallbackURLs
	}
	joined := false // the fax joined its account with this observation
	if rec.Account == "" && cfg.knowsAccount(o.APIKey) {
		rec.Account, joined = o.APIKey, true
	}
	cfg = cfg.forAccount(rec.Account)
	if rec.TraceParent == "" && !rec.Completed { // a completed fax has no events to come
		rec.TraceParent = o.TraceParent
	}
	rec.traceLink = o.TraceParent
	if obj.UpstreamID != "" && rec.UpstreamID == "" {
		rec.UpstreamID = obj.UpstreamID
	}
	var jobs []*queue.Job
	written := 0
	switch {
	case obj.Full:
		f := obj.Fax
		f.Normalize()
		rec.Fax, rec.Known = f, true
		if rec.Completed {
			break // nothing more happens to a completed fax
		}
		terminal := fax.IsTerminal(f.Status)
		if !terminal {
			rec.SeenInFlight = true
		}
		if !t.isNews(&rec) {
			rec.Completed = terminal
			break
		}
		if jobs, written, err = t.events(tx, cfg, now, &rec, obj, notes); err != nil {
			return nil, 0, err
		}
		rec.Completed = terminal
	case !rec.Known:
		// A send response ({"id":N}): the fax exists and is in flight.
		rec.SeenInFlight = true
		rec.Fax.ID = obj.Fax.ID
	}
	if rec.Completed {
		if err := tx.DeleteState(liveKey(rec.Fax.ID)); err != nil {
			return nil, 0, err
		}
	} else if isNew || !rec.Known || joined {
		if err := tx.PutState(liveKey(rec.Fax.ID), liveValue(rec.UpstreamID, rec.Account)); err != nil {
			return nil, 0, err
		}
	}
	b, err := json.Marshal(&rec)
	if err != nil {
		return nil, 0, fmt.Errorf("encoding tracked state: %w: %w", errUnappliable, err)
	}
	if bytes.Equal(b, stored) {
		return jobs, written, nil // nothing changed: no write, and a commit without writes costs no fsync
	}
	return jobs, written + len(b), tx.PutState(key, b)
}

// maxEventBytes bounds the payload of the inflight events that one observation of one fax may
// enqueue (each event carries the whole fax object): past it, that observation's inflight
// events are left out, so that one fax always fits in one transaction and its memory stays
// bounded whatever the fax service answers.
const maxEventBytes = 1 << 20

// Why an observation's inflight events were left out (faxhook_fax_events_capped_total).
const (
	capRecipients = "recipients"
	capEvents     = "events"
	capBytes      = "bytes"
)

// events enqueues what happened to a fax since it was last seen: for a sent fax the inflight
// events (when enabled) of each recipient in order, retries before pages, then fax_completed
// when the fax is final; for a received fax only fax_completed, with its PDF. Every job of one
// observation shares one encoding of the fax object. It returns the jobs and their payload
// size.
func (t *tracker) events(tx queue.Tx, cfg *settings, now time.Time, rec *trackedFax, obj profile.Object, notes *[]capNote) ([]*queue.Job, int, error) {
	f := &rec.Fax
	if f.Direction == fax.DirectionReceived {
		if !fax.IsTerminal(f.Status) {
			return nil, 0, nil
		}
		urls, err := t.receivedURLs(tx, cfg, f)
		if err != nil {
			return nil, 0, err
		}
		if len(urls) == 0 {
			return nil, 0, nil
		}
		faxJSON, err := faxPayload(f)
		if err != nil {
			return nil, 0, err
		}
		jobs, err := t.enqueueEvent(tx, now, rec, faxJSON, fax.EventFaxCompleted, nil, urls, true, cfg.versionOf(f))
		return jobs, len(jobs) * jobSize(len(faxJSON)), err
	}
	urls := t.sentURLs(cfg, rec)
	terminal := fax.IsTerminal(f.Status)
	version := cfg.versionOf(f)
	pending := 0
	// Versions below 2.1 have no inflight events: a fax whose webhooks are v1 or v2 gets only
	// its fax_completed, whatever inflight says.
	if cfg.inflight && version.Inflight() && !rec.NoInflight {
		pending = pendingInflight(rec, obj, cfg.eventCap())
	}
	if !terminal && pending == 0 {
		return nil, 0, nil // nothing to announce: no encoding of the fax object
	}
	var faxJSON string
	if len(urls) > 0 {
		var err error
		if faxJSON, err = faxPayload(f); err != nil {
			return nil, 0, err
		}
	}
	var jobs []*queue.Job
	if pending > 0 {
		reason := ""
		switch {
		case len(f.Recipients) > cfg.recipientCap():
			reason = capRecipients
		case pending > cfg.eventCap():
			reason = capEvents
		case pending*len(urls)*jobSize(len(faxJSON)) > maxEventBytes:
			reason = capBytes
		}
		if reason != "" {
			*notes = append(*notes, capped(cfg, rec, obj, reason, pending, len(faxJSON)))
		} else {
			var err error
			if jobs, err = t.inflightEvents(tx, now, rec, obj, faxJSON, urls); err != nil {
				return nil, 0, err
			}
		}
	}
	if terminal {
		js, err := t.enqueueEvent(tx, now, rec, faxJSON, fax.EventFaxCompleted, nil, urls, false, version)
		if err != nil {
			return nil, 0, err
		}
		jobs = append(jobs, js...)
	}
	return jobs, len(jobs) * jobSize(len(faxJSON)), nil
}

// faxPayload encodes the fax object as the webhook's `fax` field.
func faxPayload(f *fax.Fax) (string, error) {
	b, err := f.JSON()
	if err != nil {
		return "", fmt.Errorf("encoding fax object: %w: %w", errUnappliable, err)
	}
	return string(b), nil
}

// jobSize is about what one job with a fax object of faxLen bytes writes to the store.
func jobSize(faxLen int) int { return faxLen + 512 }

// recipientPage is the page a recipient is on now: the service's current-page extension, or
// every page once the recipient succeeded.
func recipientPage(f *fax.Fax, r fax.Recipient, obj profile.Object) int {
	if r.Status != nil && *r.Status == fax.StatusSuccess {
		return f.NumPages
	}
	return obj.CurrentPage[r.PhoneNumber]
}

// pendingInflight counts the inflight events an observation implies, without building any; it
// stops counting past limit.
func pendingInflight(rec *trackedFax, obj profile.Object, limit int) int {
	n := 0
	for _, r := range rec.Fax.Recipients {
		n += max(0, r.RetryCount-rec.Retries[r.PhoneNumber])
		n += max(0, recipientPage(&rec.Fax, r, obj)-rec.Pages[r.PhoneNumber])
		if n > limit || n < 0 { // n < 0: the sum overflowed, so it is over any limit
			return limit + 1
		}
	}
	return n
}

// inflightEvents enqueues the inflight events of a sent fax, per recipient in order, retries
// before pages, and notes in rec what was announced.
func (t *tracker) inflightEvents(tx queue.Tx, now time.Time, rec *trackedFax, obj profile.Object, faxJSON string, urls []string) ([]*queue.Job, error) {
	rec.initCounters()
	var jobs []*queue.Job
	// announce enqueues eventType for each count of recipient ph past the one noted in seen, up
	// to upTo, the count in the field name, and notes each in seen.
	announce := func(ph, eventType, name string, seen map[string]int, upTo int) error {
		for n := seen[ph] + 1; n <= upTo; n++ {
			js, err := t.enqueueEvent(tx, now, rec, faxJSON, eventType, []queue.Field{
				{Name: name, Value: strconv.Itoa(n)}, {Name: "recipient_phone_number", Value: ph}}, urls, false, render.V21)
			if err != nil {
				return err
			}
			jobs = append(jobs, js...)
			seen[ph] = n
		}
		return nil
	}
	for _, r := range rec.Fax.Recipients {
		if err := announce(r.PhoneNumber, fax.EventRetryScheduled, "retry_count", rec.Retries, r.RetryCount); err != nil {
			return nil, err
		}
		if err := announce(r.PhoneNumber, fax.EventTransmittingPage, "page", rec.Pages, recipientPage(&rec.Fax, r, obj)); err != nil {
			return nil, err
		}
	}
	return jobs, nil
}

// initCounters makes the maps of announced pages and retries ready to write.
func (rec *trackedFax) initCounters() {
	if rec.Pages == nil {
		rec.Pages = map[string]int{}
	}
	if rec.Retries == nil {
		rec.Retries = map[string]int{}
	}
}

// capNote is an observation of a fax whose inflight events were left out, reported (logged and
// counted) once the transaction that left them out is committed.
type capNote struct {
	faxID                            int64
	reason                           string
	recipients, pending, faxLen      int
	maxRecipients, maxEvents, maxLen int
}

// capped leaves an observation's inflight events out: it notes them in rec as announced, so
// that they are not sent later either, and returns what to report once committed. A fax with
// more recipients than max_recipients gets no inflight event from then on, noted once rather
// than per recipient.
func capped(cfg *settings, rec *trackedFax, obj profile.Object, reason string, pending, faxLen int) capNote {
	if reason == capRecipients {
		rec.NoInflight = true
	} else {
		rec.initCounters()
		for _, r := range rec.Fax.Recipients {
			ph := r.PhoneNumber
			rec.Retries[ph] = max(rec.Retries[ph], r.RetryCount)
			rec.Pages[ph] = max(rec.Pages[ph], recipientPage(&rec.Fax, r, obj))
		}
	}
	return capNote{faxID: rec.Fax.ID, reason: reason, recipients: len(rec.Fax.Recipients), pending: pending, faxLen: faxLen,
		maxRecipients: cfg.recipientCap(), maxEvents: cfg.eventCap(), maxLen: maxEventBytes}
}

// report logs and counts a committed capNote.
func (c capNote) report(log *zap.Logger) {
	metricEventsCapped.WithLabelValues(c.reason).Inc()
	log.Warn("leaving out a fax's inflight events: more than faxhook allows at once; its fax_completed is still sent",
		zap.Int64("fax_id", c.faxID), zap.String("reason", c.reason), zap.Int("recipients", c.recipients),
		zap.Int("events", c.pending), zap.Int("fax_bytes", c.faxLen),
		zap.Int("max_recipients", c.maxRecipients), zap.Int("max_events", c.maxEvents), zap.Int("max_event_bytes", c.maxLen))
}

// isNews tells whether what a fax does now should be announced: faxhook saw the fax in flight,
// or it completed after faxhook began tracking this storage. Listing last year's faxes through
// Caddy must not fire last year's webhooks.
func (t *tracker) isNews(rec *trackedFax) bool {
	if rec.SeenInFlight || len(rec.CallbackURLs) > 0 {
		return true
	}
	if rec.Fax.CompletedAt == nil {
		return false
	}
	at, err := time.Parse(time.RFC3339Nano, *rec.Fax.CompletedAt)
	return err == nil && !at.Before(t.since)
}

// sentURLs applies Phaxio's precedence for sent faxes: the fax's own callback_url, else the
// global sent URLs.
func (t *tracker) sentURLs(cfg *settings, rec *trackedFax) []string {
	if len(rec.CallbackURLs) > 0 {
		return rec.CallbackURLs
	}
	return cfg.sentURLs
}

// receivedURLs applies Phaxio's precedence for received faxes: the receiving number's URLs (the
// Caddyfile's `number` first, then what the fax service said about the number), else the global
// received URLs.
func (t *tracker) receivedURLs(tx queue.Tx, cfg *settings, f *fax.Fax) ([]string, error) {
	if f.ToNumber != nil {
		if urls := cfg.numberURLs[*f.ToNumber]; len(urls) > 0 {
			return urls, nil
		}
		v, err := tx.State(prefixNumber + *f.ToNumber)
		switch {
		case err == nil:
			var urls []string
			if err := json.Unmarshal(v, &urls); err != nil {
				return nil, fmt.Errorf("decoding the URLs of number %s: %w", *f.ToNumber, err)
			}
			if len(urls) > 0 {
				return urls, nil
			}
		case !errors.Is(err, queue.ErrNotFound):
			return nil, err
		}
	}
	return cfg.receivedURLs, nil
}

// enqueueEvent enqueues one event to every URL, as one job per URL with a stable ID, ordered
// behind the fax's earlier events to the same URL. faxJSON is the encoded v2.1 fax object,
// shared by every job of the observation; version is the webhook version of the fax's HTTP
// webhooks (settings.versionOf), while its e-mails are always rendered as v2.1
// (render.Event.For). A v1 or v2 event has an event id of its own (render.Event.ID), so job
// ids, which derive from the event id and the URL, stay distinct across versions.
func (t *tracker) enqueueEvent(tx queue.Tx, now time.Time, rec *trackedFax, faxJSON, eventType string, extra []queue.Field, urls []string, withFile bool, version render.Version) ([]*queue.Job, error) {
	if len(urls) == 0 {
		return nil, nil
	}
	ev := render.Event{FaxID: rec.Fax.ID, Account: rec.Account, Type: eventType, FaxJSON: faxJSON, Extra: extra, Version: version, Fax: &rec.Fax}
	if withFile {
		ev.FileRef = render.PrepareReceivedPDF
	}
	// The fields of each version, rendered once for every URL of that version.
	fieldsOf := map[render.Version][]queue.Field{}
	meta := func(e render.Event) queue.Labels {
		m := e.Meta()
		if rec.Account != "" {
			m = append(m, queue.Label{Name: labelAccount, Value: rec.Account})
		}
		return append(m, traceMeta(rec)...)
	}
	all := make([]*queue.Job, 0, len(urls))
	for _, u := range urls {
		e := ev.For(u)
		fields, ok := fieldsOf[e.Version]
		if !ok {
			var err error
			if fields, err = e.WireFields(); err != nil {
				return nil, fmt.Errorf("rendering %s: %w: %w", eventType, errUnappliable, err)
			}
			fieldsOf[e.Version] = fields
		}
		payload, err := e.Payload(u, fields)
		if err != nil {
			return nil, fmt.Errorf("rendering %s for %s: %w", eventType, queue.RedactURL(u), err)
		}
		eventID := e.ID()
		sum := sha256.Sum256([]byte(eventID + "\x00" + u))
		j := &queue.Job{
			ID: hex.EncodeToString(sum[:12]), EventID: eventID, Meta: meta(e),
			URL: u, Payload: payload, CreatedAt: now, DueAt: now,
			Chain: strconv.FormatInt(rec.Fax.ID, 10) + "\x00" + u,
		}
		all = append(all, j)
	}
	ok, err := queue.EnqueueAll(tx, all)
	if err != nil {
		return nil, fmt.Errorf("enqueueing %s: %w", eventType, err)
	}
	var jobs []*queue.Job
	for i, j := range all {
		if ok[i] {
			jobs = append(jobs, j)
		}
	}
	return jobs, nil
}
