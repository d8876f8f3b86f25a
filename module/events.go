package module

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyevents"
	"go.uber.org/zap"

	"github.com/faxhook/caddy-faxhook/module/render"
	"github.com/faxhook/caddy-faxhook/queue"
)

// Caddy events that faxhook emits through the events app. Their data is
// {job_id, fax_id, event_type, url (credentials redacted), attempt, status, error}.
const (
	// EventDeliveryFailed is emitted for every failed delivery attempt, the last one included.
	EventDeliveryFailed = "faxhook_delivery_failed"
	// EventDeliveryDead is emitted, after EventDeliveryFailed, when a job has no attempt left.
	// Its data also has reason, why the job died (queue.DeadReason): "no more retries",
	// "destination refused by the SSRF guard (permanent)", "permanent failure, not retried" or
	// "destination down until the retry ladder's time ran out".
	EventDeliveryDead = "faxhook_delivery_dead"
)

// emitBacklog bounds the events waiting to be emitted; more are dropped (with a debug log).
const emitBacklog = 256

// eventsTarget is one config's events app and the context to emit with (the faxhook app's, so
// that the events' origin is the faxhook module).
type eventsTarget struct {
	ctx caddy.Context
	app *caddyevents.App
}

// subscribe returns this config's events target, or nil when there is no events app. The
// target is put to use only once the config has fully started (Caddy's "started" event): before
// that, the events app may still be starting, and its Start writes the subscription map that
// Emit reads. On a reload the new config starts before the old one stops, so the newest
// started config's events app is the one used.
func (em *eventEmitter) subscribe(ctx caddy.Context, log *zap.Logger) *eventsTarget {
	v, err := ctx.App("events")
	if err != nil {
		log.Debug("no events app; faxhook will not emit Caddy events", zap.Error(err))
		return nil
	}
	app, ok := v.(*caddyevents.App)
	if !ok {
		return nil
	}
	t := &eventsTarget{ctx: ctx, app: app}
	if err := app.On("started", activateEvents{em: em, t: t}); err != nil {
		log.Debug("cannot subscribe to the started event; faxhook will not emit Caddy events", zap.Error(err))
		return nil
	}
	return t
}

// activateEvents puts a config's events target to use when that config has started.
type activateEvents struct {
	em *eventEmitter
	t  *eventsTarget
}

// Handle implements caddyevents.Handler.
func (a activateEvents) Handle(context.Context, caddy.Event) error {
	a.em.use(a.t)
	if a.em.onUse != nil {
		a.em.onUse()
	}
	return nil
}

// eventEmitter emits Caddy events from a goroutine of its own, fed by a bounded channel, so that
// the dispatcher never waits for event handlers (Emit runs them synchronously). Its zero value
// is ready; the goroutine starts with the first target and stops in close.
type eventEmitter struct {
	mu      sync.Mutex
	targets []*eventsTarget // started configs' targets, newest last
	ch      chan emission
	stop    chan struct{}
	done    chan struct{}
	closed  bool
	log     *zap.Logger
	// onUse, if set (before the first use), runs each time a started config's target is put
	// to use, so that a state that began before is reported (spaceWatch.announce: a full disk
	// at start).
	onUse func()
}

// emission is one event waiting to be emitted.
type emission struct {
	name string
	data map[string]any
}

// use makes t the newest target, starting the emitting goroutine on first use.
func (em *eventEmitter) use(t *eventsTarget) {
	em.mu.Lock()
	defer em.mu.Unlock()
	if em.closed || t == nil {
		return
	}
	em.remove(t)
	em.targets = append(em.targets, t)
	if em.ch == nil {
		em.ch = make(chan emission, emitBacklog)
		em.stop, em.done = make(chan struct{}), make(chan struct{})
		em.log = caddy.Log().Named("faxhook.events")
		go em.loop(em.ch, em.stop, em.done)
	}
}

// drop forgets t; the previous target, if any, becomes the current one again. The App calls
// it in Cleanup so that no reference to a cleaned-up config's events app stays in the shared
// engine; a nil t (the config had no events app) changes nothing.
func (em *eventEmitter) drop(t *eventsTarget) {
	em.mu.Lock()
	defer em.mu.Unlock()
	em.remove(t)
}

func (em *eventEmitter) remove(t *eventsTarget) {
	for i, x := range em.targets {
		if x == t {
			em.targets = append(em.targets[:i], em.targets[i+1:]...)
			return
		}
	}
}

// current returns the newest target, or nil.
func (em *eventEmitter) current() *eventsTarget {
	em.mu.Lock()
	defer em.mu.Unlock()
	if em.closed || len(em.targets) == 0 {
		return nil
	}
	return em.targets[len(em.targets)-1]
}

// emit queues an event without blocking; it is dropped when nothing listens, when the backlog
// is full or after close.
func (em *eventEmitter) emit(name string, data map[string]any) {
	em.mu.Lock()
	if em.closed || em.ch == nil || len(em.targets) == 0 {
		em.mu.Unlock()
		return
	}
	t, ch, stop, log := em.targets[len(em.targets)-1], em.ch, em.stop, em.log
	em.mu.Unlock()
	if !t.app.ShouldEmit(name) {
		return
	}
	select {
	case <-stop:
	case ch <- emission{name: name, data: data}:
	default:
		log.Debug("event backlog full; dropping an event", zap.String("event", name), zap.Any("job_id", data["job_id"]))
	}
}

// loop emits queued events through the newest target until stop is closed.
func (em *eventEmitter) loop(ch chan emission, stop, done chan struct{}) {
	defer close(done)
	for {
		select {
		case <-stop:
			return
		case ev := <-ch:
			if t := em.current(); t != nil {
				em.emitOne(t, ev)
			}
		}
	}
}

// emitOne emits one event; a panicking event handler is logged, not fatal.
func (em *eventEmitter) emitOne(t *eventsTarget, ev emission) {
	defer func() {
		if r := recover(); r != nil {
			em.log.Error("event handler panicked", zap.String("event", ev.name), zap.Any("panic", r))
		}
	}()
	t.app.Emit(t.ctx, ev.name, ev.data)
}

// close stops the emitting goroutine, waits for it (at most closeWait, should an event handler
// hang) and forgets every target. Events still queued are dropped. It is idempotent.
func (em *eventEmitter) close() {
	em.mu.Lock()
	if em.closed {
		em.mu.Unlock()
		return
	}
	em.closed = true
	em.targets = nil
	stop, done, log := em.stop, em.done, em.log
	em.mu.Unlock()
	if stop == nil {
		return
	}
	close(stop)
	select {
	case <-done:
	case <-time.After(closeWait):
		// An event handler is slow; the goroutine exits as soon as it returns.
		log.Warn("an event handler is still running; not waiting for it any longer", zap.Duration("waited", closeWait))
	}
}

// closeWait bounds how long close waits for an event handler under way.
const closeWait = 5 * time.Second

// outcomes turns the dispatcher's outcomes into metrics and Caddy events: every attempt is
// counted, and a failed one is announced with faxhook_delivery_failed (and faxhook_delivery_dead
// when the job died).
type outcomes struct {
	events *eventEmitter
	// cfg returns the newest config's settings, whose webhook token is scrubbed from the
	// errors that the events carry.
	cfg func() *settings
}

// onOutcome is the dispatcher's OnOutcome hook. It runs in a delivery worker and never blocks.
func (o outcomes) onOutcome(j *queue.Job, res queue.Result) {
	outcome := observeOutcome(j)
	if acct := j.Meta.Get(labelAccount); acct != "" {
		if a, ok := o.cfg().accounts[acct]; ok && a.metrics {
			metricAccountDeliveries.WithLabelValues(acct, outcome).Inc()
		}
	}
	if j.State == queue.StateDelivered {
		return
	}
	errText := ""
	if res.Err != nil {
		errText = jobRedactor(o.cfg(), j).text(res.Err.Error())
	}
	faxID, eventType := render.FaxOf(j.Meta)
	data := func() map[string]any {
		return map[string]any{
			"job_id": j.ID, "fax_id": faxID, "event_type": eventType, "url": queue.RedactURL(j.URL),
			"attempt": len(j.Attempts), "status": res.Status, "error": errText,
		}
	}
	o.events.emit(EventDeliveryFailed, data())
	if j.State == queue.StateDead {
		d := data()
		d["reason"] = queue.DeadReason(res)
		o.events.emit(EventDeliveryDead, d)
	}
}

// jobLogFields are the fields that describe a job in log entries: the fax id (a number, as in
// every entry about a fax) and the event type from its metadata, and, for a job in a trace
// (see tracing.go), its trace id as `traceID`, the field Caddy's tracing adds to the access
// log of the request that revealed the fax, so that one search finds both.
func jobLogFields(j *queue.Job) []zap.Field {
	faxID, eventType := render.FaxOf(j.Meta)
	f := []zap.Field{zap.Int64("fax_id", faxID), zap.String("event_type", eventType)}
	if id := traceIDOf(j.Meta.Get(labelTraceParent)); id != "" {
		f = append(f, zap.String("traceID", id))
	}
	return f
}

// traceIDOf returns the trace id of a W3C traceparent (version-traceid-spanid-flags), or "".
func traceIDOf(traceparent string) string {
	if len(traceparent) != 55 || traceparent[2] != '-' || traceparent[35] != '-' {
		return ""
	}
	return traceparent[3:35]
}

// redactor removes secrets from text shown outside the process (admin API, events): the
// webhook token, the Standard Webhooks secrets, the password and user:password of a URL, and any scheme://user[:pass]@ part.
type redactor struct{ secrets []string }

// userinfoRE matches the credentials part of a URL inside free text.
var userinfoRE = regexp.MustCompile(`([A-Za-z][A-Za-z0-9+.\-]*://)[^/?#@\s"'<>]+@`)

// redactorFor returns a redactor for texts about a job to rawURL (empty: no URL-specific
// secrets) under the settings cfg (nil: no token).
func redactorFor(cfg *settings, rawURL string) redactor {
	var r redactor
	if cfg != nil {
		r.add(cfg.token)
		for _, sec := range cfg.standardSecrets {
			r.add(sec)
		}
	}
	if rawURL != "" {
		t, _ := queue.ParseTarget(rawURL) // the credentials are split off also when it does not validate
		r.add(t.Userinfo)
		r.add(t.Password)
	}
	return r
}

// add records a secret; very short ones are skipped, as replacing them would mangle the text
// without hiding anything worth hiding.
func (r *redactor) add(s string) {
	if len(s) >= 4 {
		r.secrets = append(r.secrets, s)
	}
}

// text returns s with every secret replaced by REDACTED.
func (r redactor) text(s string) string {
	if s == "" {
		return s
	}
	for _, sec := range r.secrets {
		s = strings.ReplaceAll(s, sec, "REDACTED")
	}
	return userinfoRE.ReplaceAllString(s, "${1}REDACTED@")
}

// String describes the redactor without its secrets.
func (r redactor) String() string { return fmt.Sprintf("redactor(%d secrets)", len(r.secrets)) }
