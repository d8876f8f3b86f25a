package module

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"go.uber.org/zap"

	"github.com/faxhook/caddy-faxhook/handler/extract"
	"github.com/faxhook/caddy-faxhook/queue"
	"github.com/faxhook/caddy-faxhook/queue/fax"
)

// Observation is what a handler (or the poller) saw about faxes in one exchange with the fax
// service.
type Observation struct {
	// Faxes are the fax objects found in the response.
	Faxes []extract.Object
	// CallbackURLs holds the callback_url of a send or resend request; it belongs to the faxes
	// that request created (those in Faxes).
	CallbackURLs []string
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
	// FirstSeen is when faxhook first heard of the fax.
	FirstSeen time.Time `json:"first_seen"`
}

const keySince = "meta/since"

// tracker keeps each fax's last known state and turns changes into webhook jobs, in the same
// transaction as the new state.
type tracker struct {
	eng   *engine
	since time.Time // when this storage first started tracking: older completions are history
}

// init reads (or records, on first use) the time from which completions are news.
func (t *tracker) init() error {
	return t.eng.store.Update(func(tx queue.Tx) error {
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
}

// record applies a batch of observations in one transaction and wakes the dispatcher if any job
// was enqueued.
func (t *tracker) record(batch []*Observation) error {
	cfg := t.eng.cfg.Load()
	now := time.Now().UTC()
	var enqueued []*queue.Job
	err := t.eng.store.Update(func(tx queue.Tx) error {
		enqueued = enqueued[:0]
		for _, o := range batch {
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

func faxKey(id int64) string { return "fax/" + strconv.FormatInt(id, 10) }

// apply merges one observed fax object into its record and enqueues the events it implies.
func (t *tracker) apply(tx queue.Tx, cfg *settings, now time.Time, obj extract.Object, callbackURLs []string) ([]*queue.Job, error) {
	key := faxKey(obj.Fax.ID)
	var rec trackedFax
	v, err := tx.State(key)
	switch {
	case errors.Is(err, queue.ErrNotFound):
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
	if obj.Full {
		f := obj.Fax
		f.Normalize()
		rec.Fax, rec.Known = f, true
		if !fax.IsTerminal(f.Status) {
			rec.SeenInFlight = true
		} else if !rec.Completed && f.Direction != fax.DirectionReceived {
			rec.Completed = true
			if t.isNews(&rec) {
				jobs, err = t.enqueueEvent(tx, now, &rec, fax.EventFaxCompleted, nil, t.sentURLs(cfg, &rec))
				if err != nil {
					return nil, err
				}
			}
		}
	} else if !rec.Known {
		// A send response ({"id":N}): the fax exists and is in flight.
		rec.SeenInFlight = true
		rec.Fax.ID = obj.Fax.ID
	}
	b, err := json.Marshal(&rec)
	if err != nil {
		return nil, fmt.Errorf("encoding tracked state: %w", err)
	}
	return jobs, tx.PutState(key, b)
}

// isNews tells whether a completion should be announced: faxhook saw the fax in flight, or it
// completed after faxhook began tracking this storage. Listing last year's faxes through Caddy
// must not fire last year's webhooks.
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

// enqueueEvent enqueues one event to every URL, as one job per URL with a stable ID.
func (t *tracker) enqueueEvent(tx queue.Tx, now time.Time, rec *trackedFax, eventType string, extra []queue.Field, urls []string) ([]*queue.Job, error) {
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
