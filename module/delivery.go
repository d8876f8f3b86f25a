package module

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"

	"github.com/faxhook/caddy-faxhook/module/render"
	"github.com/faxhook/caddy-faxhook/queue"
	"github.com/faxhook/caddy-faxhook/queue/httpsend"
)

// delivery is the engine's way out: one queue.Dispatcher over the store, which sends with the
// newest config's senders and is started by the first config and kept across reloads, so that
// two configs never run two dispatchers over one queue.
type delivery struct {
	store queue.Store
	cfg   func() *settings // the newest config's settings (its SMTP sender)
	// instance names this process's dispatcher in a store that a fleet shares; empty for Badger.
	instance string
	// fetchFile fetches a received fax's PDF before its webhook's first attempt (poller.fetchFile).
	fetchFile func(ctx context.Context, j *queue.Job) (*queue.File, error)
	// onOutcome is told every attempt's outcome (outcomes.onOutcome); it must not block.
	onOutcome func(j *queue.Job, res queue.Result)
	// onHealth is told of destinations going down and coming back up; it must not block.
	onHealth func(h queue.DestinationHealth)

	senders atomic.Pointer[senderSet] // the newest config's HTTP senders
	// tracer is the tracer provider of Caddy's `tracing`, once a traced request showed it
	// (tracing.go); the HTTP senders trace the attempts of traced faxes' webhooks with it.
	tracer tracerHolder

	mu   sync.Mutex
	disp *queue.Dispatcher // nil until the first start, and after stop
}

// start makes the config s's senders current and starts the dispatcher, or, when it runs
// already, hands it the new retry schedule.
func (d *delivery) start(s settings, log *zap.Logger) error {
	if old := d.senders.Swap(newSenderSet(&s, d.tracer.provider)); old != nil {
		old.closeIdle() // the replaced config's keep-alive connections would linger
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.disp != nil {
		d.disp.SetSchedule(s.schedule)
		d.disp.SetHealth(s.health)
		return nil
	}
	d.disp = queue.NewDispatcher(d.store, senderFunc(d.send), queue.Options{
		Schedule:  s.schedule,
		Workers:   s.workers,
		PerHost:   s.perHost,
		Lease:     s.timeout + 30*time.Second,
		Logger:    log.Named("dispatcher"),
		OnOutcome: d.onOutcome,
		Prepare:   d.prepare,
		LogFields: jobLogFields,
		Instance:  d.instance,
		Health:    s.health,
		OnHealth:  d.onHealth,
	})
	if err := d.disp.Start(); err != nil {
		d.disp = nil
		return fmt.Errorf("starting the webhook dispatcher: %w", err)
	}
	dispatchersRunning.Add(1)
	return nil
}

// stop stops the dispatcher, if it runs, waiting for the attempts under way.
func (d *delivery) stop() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.disp != nil {
		d.disp.Stop()
		d.disp = nil
		dispatchersRunning.Add(-1)
	}
}

// dispatcher returns the running dispatcher, or nil.
func (d *delivery) dispatcher() *queue.Dispatcher {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.disp
}

// running reports whether the dispatcher runs.
func (d *delivery) running() bool { return d.dispatcher() != nil }

// send delivers with the newest config's sender: SMTP for mailto: URLs, HTTP for the others.
func (d *delivery) send(ctx context.Context, j *queue.Job) queue.Result {
	if render.IsMail(j.URL) {
		m := d.cfg().mail
		if m == nil {
			return queue.Result{Permanent: true, Err: errors.New("mailto: webhook, but no smtp server is configured (faxhook { smtp { … } })")}
		}
		return m.Send(ctx, j)
	}
	return d.senders.Load().of(j).Send(ctx, j)
}

// senderSet holds a config's HTTP senders: one per webhook token, so that the jobs of an
// account with a token of its own (see Account) are signed with it.
type senderSet struct {
	base      *httpsend.Sender
	byAccount map[string]*httpsend.Sender // by API key, for accounts whose token differs from the app's
	all       []*httpsend.Sender
}

// newSenderSet builds the senders of the config s; they trace attempts with the provider
// that tracer returns (nil: none).
func newSenderSet(s *settings, tracer func() trace.TracerProvider) *senderSet {
	mk := func(token string, standard []httpsend.StandardRule) *httpsend.Sender {
		return httpsend.New(httpsend.Options{Token: token, Timeout: s.timeout, Guard: s.guard, MaxIdleConnsPerHost: s.perHost,
			StandardWebhooks: standard, TracerProvider: tracer, SpanAttributes: spanAttributes, SpanName: spanName})
	}
	set := &senderSet{base: mk(s.token, s.standard)}
	set.all = append(set.all, set.base)
	byToken := map[string]*httpsend.Sender{s.token: set.base}
	for key, as := range s.accounts {
		snd, ok := byToken[as.token]
		switch {
		case as.ownStandard: // a sender of its own: its Standard Webhooks rules are its own
			snd = mk(as.token, as.standard)
			set.all = append(set.all, snd)
		case !ok:
			snd = mk(as.token, as.standard)
			byToken[as.token] = snd
			set.all = append(set.all, snd)
		}
		if snd != set.base {
			if set.byAccount == nil {
				set.byAccount = map[string]*httpsend.Sender{}
			}
			set.byAccount[key] = snd
		}
	}
	return set
}

// of returns the sender of job j: its account's (the job label labelAccount), else the base.
func (s *senderSet) of(j *queue.Job) *httpsend.Sender {
	if len(s.byAccount) > 0 {
		if snd, ok := s.byAccount[j.Meta.Get(labelAccount)]; ok {
			return snd
		}
	}
	return s.base
}

// closeIdle closes the idle keep-alive connections of every sender.
func (s *senderSet) closeIdle() {
	for _, snd := range s.all {
		snd.CloseIdleConnections()
	}
}

// prepare is the dispatcher's Prepare hook: before a received fax's webhook is first attempted,
// it fetches the fax's PDF and renders the payload with it (render.Prepared). The dispatcher
// stores that payload with the attempt's outcome, so that every attempt sends the same bytes.
func (d *delivery) prepare(ctx context.Context, j *queue.Job) (queue.Payload, error) {
	file, err := d.fetchFile(ctx, j)
	if err != nil {
		return queue.Payload{}, err
	}
	return render.Prepared(j, file)
}

// leases returns the jobs the running dispatcher holds leased, with the end of each lease (see
// queue.Dispatcher.Leases); nil when no dispatcher runs.
func (d *delivery) leases() map[string]time.Time {
	if disp := d.dispatcher(); disp != nil {
		return disp.Leases()
	}
	return nil
}

// wake tells a running dispatcher that jobs were enqueued.
func (d *delivery) wake() {
	if disp := d.dispatcher(); disp != nil {
		disp.Wake()
	}
}

// asLeased shows a job that the store holds as pending, but that the dispatcher leased (in
// memory), as leased until its lease ends: what operators see of a job whose attempt is under way.
//
// In a fleet (PostgreSQL), a job another instance claimed is shown as leased too, until its
// claim ends; its Lease names that instance.
func asLeased(j *queue.Job, leases map[string]time.Time) {
	if j.State != queue.StatePending {
		return
	}
	if until, ok := leases[j.ID]; ok {
		j.State, j.DueAt = queue.StateLeased, until
	} else if j.Lease != "" && j.DueAt.After(time.Now()) {
		j.State = queue.StateLeased
	}
}

// senderFunc adapts a function to queue.Sender.
type senderFunc func(ctx context.Context, j *queue.Job) queue.Result

func (f senderFunc) Send(ctx context.Context, j *queue.Job) queue.Result { return f(ctx, j) }
