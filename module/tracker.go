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

	"github.com/faxhook/caddy-faxhook/handler/extract"
	"github.com/faxhook/caddy-faxhook/queue"
	"github.com/faxhook/caddy-faxhook/queue/fax"
)

// Observation is what a handler (or the poller) saw in one exchange with the fax service.
type Observation struct {
	// Faxes are the fax objects found in the response.
	Faxes []extract.Object
	// CallbackURLs holds the callback_url of a send or resend request; it belongs to the faxes
	// that request created (those in Faxes).
	CallbackURLs []string
	// Numbers are phone number objects found in the response, with their webhook URLs.
	Numbers []extract.Number
	// OnRecorded, if set, is called once the observation is durably recorded.
	OnRecorded func()

	journaled *segment // the send journal segment that holds it until it is recorded
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
}

// Keys of tracker records.
const (
	keySince     = "meta/since"
	prefixFax    = "fax/"    // fax/<id> → trackedFax
	prefixLive   = "live/"   // live/<id> → "" while a fax is not complete (the poller's work list)
	prefixNumber = "number/" // number/<E.164> → JSON list of the number's webhook URLs
)

// tracker keeps each fax's last known state and turns changes into webhook jobs, in the same
// transaction as the new state.
type tracker struct {
	eng   *engine
	since time.Time // when this storage first started tracking: older completions are history
	// ready is set once since is read: until then (a start on a full disk) record refuses.
	ready atomic.Bool
}

// init reads (or records, on first use) the time from which completions are news.
func (t *tracker) init() error {
	err := t.eng.store.Update(func(tx queue.Tx) error {
		v, err := tx.State(keySince)
		if errors.Is(err, queue.ErrNotFound) {
			t.since = time.Now().UTC().Truncate(time.Second)
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

// record applies a batch of observations in one transaction and wakes the dispatcher if any job
// was enqueued.
func (t *tracker) record(batch []*Observation) error {
	if !t.ready.Load() {
		return fmt.Errorf("%w: faxhook starts recording once its storage has space", queue.ErrNoSpace)
	}
	cfg := t.eng.cfg.Load()
	now := time.Now().UTC()
	var enqueued []*queue.Job
	err := t.eng.store.Update(func(tx queue.Tx) error {
		enqueued = enqueued[:0]
		for _, o := range batch {
			for _, n := range o.Numbers {
				if err := t.applyNumber(tx, n); err != nil {
					return fmt.Errorf("tracking number %s: %w", n.PhoneNumber, err)
				}
			}
			for _, obj := range o.Faxes {
				jobs, err := t.apply(tx, cfg, now, obj, o.CallbackURLs)
				if err != nil {
					return fmt.Errorf("tracking fax %d: %w", obj.Fax.ID, err)
				}
				enqueued = append(enqueued, jobs...)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, o := range batch {
		if o.OnRecorded != nil {
			o.OnRecorded()
		}
	}
	countEvents(enqueued)
	log := t.eng.log.Load()
	for _, j := range enqueued {
		log.Info("webhook enqueued", zap.Int64("fax_id", j.FaxID), zap.String("event_type", j.EventType),
			zap.String("url", queue.RedactURL(j.URL)), zap.String("job", j.ID))
	}
	if len(enqueued) > 0 {
		t.eng.wake()
	}
	return nil
}

// applyNumber records the webhook URL a phone number object carries.
func (t *tracker) applyNumber(tx queue.Tx, n extract.Number) error {
	if !n.HasCallback {
		return nil
	}
	if n.CallbackURL == "" {
		return tx.DeleteState(prefixNumber + n.PhoneNumber)
	}
	if err := ValidateURL(n.CallbackURL); err != nil {
		t.eng.log.Load().Warn("ignoring a phone number's callback_url", zap.String("number", n.PhoneNumber),
			zap.String("url", queue.RedactURL(n.CallbackURL)), zap.Error(err))
		return nil
	}
	b, _ := json.Marshal([]string{n.CallbackURL})
	return tx.PutState(prefixNumber+n.PhoneNumber, b)
}

func faxKey(id int64) string  { return prefixFax + strconv.FormatInt(id, 10) }
func liveKey(id int64) string { return prefixLive + strconv.FormatInt(id, 10) }

// apply merges one observed fax object into its record and enqueues the events it implies.
func (t *tracker) apply(tx queue.Tx, cfg *settings, now time.Time, obj extract.Object, callbackURLs []string) ([]*queue.Job, error) {
	key := faxKey(obj.Fax.ID)
	var rec trackedFax
	v, err := tx.State(key)
	stored := v
	isNew := errors.Is(err, queue.ErrNotFound)
	switch {
	case isNew:
		rec.FirstSeen = now
	case err != nil:
		return nil, err
	default:
		if err := json.Unmarshal(v, &rec); err != nil {
			return nil, fmt.Errorf("decoding tracked state: %w", err)
		}
	}
	if len(callbackURLs) > 0 && len(rec.CallbackURLs) == 0 {
		rec.CallbackURLs = callbackURLs
	}
	var jobs []*queue.Job
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
		if jobs, err = t.events(tx, cfg, now, &rec, obj); err != nil {
			return nil, err
		}
		rec.Completed = terminal
	case !rec.Known:
		// A send response ({"id":N}): the fax exists and is in flight.
		rec.SeenInFlight = true
		rec.Fax.ID = obj.Fax.ID
	}
	if rec.Completed {
		if err := tx.DeleteState(liveKey(rec.Fax.ID)); err != nil {
			return nil, err
		}
	} else if isNew || !rec.Known {
		if err := tx.PutState(liveKey(rec.Fax.ID), nil); err != nil {
			return nil, err
		}
	}
	b, err := json.Marshal(&rec)
	if err != nil {
		return nil, fmt.Errorf("encoding tracked state: %w", err)
	}
	if bytes.Equal(b, stored) {
		return jobs, nil // nothing changed: no write, and a commit without writes costs no fsync
	}
	return jobs, tx.PutState(key, b)
}

// events enqueues what happened to a fax since it was last seen: for a sent fax the inflight
// events (when enabled) of each recipient in order, retries before pages, then fax_completed
// when the fax is final; for a received fax only fax_completed, with its PDF.
func (t *tracker) events(tx queue.Tx, cfg *settings, now time.Time, rec *trackedFax, obj extract.Object) ([]*queue.Job, error) {
	f := &rec.Fax
	if f.Direction == fax.DirectionReceived {
		if !fax.IsTerminal(f.Status) {
			return nil, nil
		}
		urls, err := t.receivedURLs(tx, cfg, f)
		if err != nil {
			return nil, err
		}
		return t.enqueueEvent(tx, now, rec, fax.EventFaxCompleted, nil, urls, true)
	}
	urls := t.sentURLs(cfg, rec)
	var jobs []*queue.Job
	if cfg.inflight {
		if rec.Pages == nil {
			rec.Pages = map[string]int{}
		}
		if rec.Retries == nil {
			rec.Retries = map[string]int{}
		}
		for _, r := range f.Recipients {
			ph := r.PhoneNumber
			for n := rec.Retries[ph] + 1; n <= r.RetryCount; n++ {
				js, err := t.enqueueEvent(tx, now, rec, fax.EventRetryScheduled, []queue.Field{
					{Name: "retry_count", Value: strconv.Itoa(n)}, {Name: "recipient_phone_number", Value: ph}}, urls, false)
				if err != nil {
					return nil, err
				}
				jobs = append(jobs, js...)
				rec.Retries[ph] = n
			}
			page := obj.CurrentPage[ph]
			if r.Status != nil && *r.Status == fax.StatusSuccess {
				page = f.NumPages // a successful recipient got every page
			}
			for p := rec.Pages[ph] + 1; p <= page; p++ {
				js, err := t.enqueueEvent(tx, now, rec, fax.EventTransmittingPage, []queue.Field{
					{Name: "page", Value: strconv.Itoa(p)}, {Name: "recipient_phone_number", Value: ph}}, urls, false)
				if err != nil {
					return nil, err
				}
				jobs = append(jobs, js...)
				rec.Pages[ph] = p
			}
		}
	}
	if fax.IsTerminal(f.Status) {
		js, err := t.enqueueEvent(tx, now, rec, fax.EventFaxCompleted, nil, urls, false)
		if err != nil {
			return nil, err
		}
		jobs = append(jobs, js...)
	}
	return jobs, nil
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
// behind the fax's earlier events to the same URL.
func (t *tracker) enqueueEvent(tx queue.Tx, now time.Time, rec *trackedFax, eventType string, extra []queue.Field, urls []string, withFile bool) ([]*queue.Job, error) {
	if len(urls) == 0 {
		return nil, nil
	}
	faxJSON, err := rec.Fax.JSON()
	if err != nil {
		return nil, fmt.Errorf("encoding fax object: %w", err)
	}
	eventID := fmt.Sprintf("%d.%s", rec.Fax.ID, eventType)
	for _, f := range extra {
		eventID += "." + f.Name + "=" + f.Value
	}
	fields := append([]queue.Field{{Name: "fax", Value: string(faxJSON)}, {Name: "event_type", Value: eventType}}, extra...)
	var jobs []*queue.Job
	for _, u := range urls {
		sum := sha256.Sum256([]byte(eventID + "\x00" + u))
		j := &queue.Job{
			ID: hex.EncodeToString(sum[:12]), EventID: eventID, EventType: eventType, FaxID: rec.Fax.ID,
			URL: u, Fields: fields, CreatedAt: now, DueAt: now,
			Chain: strconv.FormatInt(rec.Fax.ID, 10) + "\x00" + u,
		}
		if withFile {
			j.FetchFile = fmt.Sprintf("faxes/%d/file", rec.Fax.ID)
		}
		ok, err := tx.Enqueue(j)
		if err != nil {
			return nil, fmt.Errorf("enqueueing %s for %s: %w", eventType, queue.RedactURL(u), err)
		}
		if ok {
			jobs = append(jobs, j)
		}
	}
	return jobs, nil
}
