package module

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
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

// engines pools one engine per storage directory across config loads: Badger allows one open per
// directory, and a reload provisions the new config before the old one is cleaned up.
var engines = caddy.NewUsagePool()

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

// engine is the pooled part of the app, an assembly of the store, the tracker, the observation
// worker (observations), the poller, the emitter of Caddy events and the dispatcher. Exactly one
// exists per storage directory in a process.
type engine struct {
	dir     string
	store   *queue.Badger
	log     atomic.Pointer[zap.Logger]
	cfg     atomic.Pointer[settings]
	sender  atomic.Pointer[httpsend.Sender]
	tracker *tracker
	ev      eventEmitter // Caddy events of delivery failures (events.go)
	space   spaceState   // what a full disk changes (diskspace.go)
	vias    viaCache     // client requests that revealed received faxes, in memory only (via.go)

	mu      sync.Mutex
	disp    *queue.Dispatcher
	poll    *poller
	polling bool          // the poller's loop was started
	obs     *observations // the observation worker (observe.go)
	journal *journal      // what creating requests said, until the tracker recorded it
	stop    chan struct{}
	once    sync.Once
}

// loadEngine returns the engine for dir, opening it on first use.
// minFree is the store's free-space reserve (0: the default); the first config to open dir sets it.
func loadEngine(dir string, syncWrites bool, minFree int64, log *zap.Logger) (*engine, error) {
	v, loaded, err := engines.LoadOrNew(dir, func() (caddy.Destructor, error) {
		e := &engine{
			dir:  dir,
			stop: make(chan struct{}),
		}
		e.log.Store(log)
		e.ev.onUse = e.announceSpace
		st, err := queue.OpenBadger(dir, e.storeOptions(syncWrites, minFree, log))
		if err != nil {
			return nil, err
		}
		e.store = st
		e.cfg.Store(&settings{schedule: queue.DefaultSchedule})
		e.tracker = &tracker{eng: e}
		e.poll = newPoller(e)
		e.obs = newObservations(e, syncWrites)
		j, entries, err := openJournal(dir)
		if err != nil {
			st.Close()
			return nil, err
		}
		e.journal = j
		if err := e.initStore(entries); err != nil { // deferred while the disk is full
			j.close()
			st.Close()
			return nil, fmt.Errorf("opening faxhook storage at %s: %w", dir, err)
		}
		go e.obs.loop()
		return e, nil
	})
	if err != nil {
		return nil, err
	}
	if loaded {
		log.Debug("sharing faxhook storage with the running config", zap.String("storage", dir))
	}
	return v.(*engine), nil
}

// start applies s and starts the dispatcher if it is not running yet.
func (e *engine) start(s settings, log *zap.Logger) error {
	e.log.Store(log)
	e.cfg.Store(&s)
	if old := e.sender.Swap(httpsend.New(httpsend.Options{Token: s.token, Timeout: s.timeout, Guard: s.guard, MaxIdleConnsPerHost: s.perHost})); old != nil {
		old.CloseIdleConnections() // the replaced config's keep-alive connections would linger
	}
	e.store.StartJanitor(queue.JanitorOptions{
		DeliveredRetention: s.deliveredRetention, DeadRetention: s.deadRetention, Logger: log.Named("janitor"),
	})
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.polling {
		e.polling = true
		go e.poll.loop()
	}
	if e.disp != nil {
		e.disp.SetSchedule(s.schedule)
		return nil
	}
	e.disp = queue.NewDispatcher(e.store, senderFunc(e.send), queue.Options{
		Schedule:  s.schedule,
		Workers:   s.workers,
		PerHost:   s.perHost,
		Lease:     s.timeout + 30*time.Second,
		Logger:    log.Named("dispatcher"),
		OnOutcome: e.onOutcome,
		Prepare:   e.prepare,
		LogFields: jobLogFields,
	})
	if err := e.disp.Start(); err != nil {
		e.disp = nil
		return fmt.Errorf("starting the webhook dispatcher: %w", err)
	}
	dispatchersRunning.Add(1)
	return nil
}

// send delivers with the newest config's sender: SMTP for mailto: URLs, HTTP for the others.
func (e *engine) send(ctx context.Context, j *queue.Job) queue.Result {
	if render.IsMail(j.URL) {
		m := e.cfg.Load().mail
		if m == nil {
			return queue.Result{Permanent: true, Err: errors.New("mailto: webhook, but no smtp server is configured (faxhook { smtp { … } })")}
		}
		return m.Send(ctx, j)
	}
	return e.sender.Load().Send(ctx, j)
}

// prepare is the dispatcher's Prepare hook: before a received fax's webhook is first attempted,
// it fetches the fax's PDF and renders the payload with it (render.Prepared). The dispatcher
// stores that payload with the attempt's outcome, so that every attempt sends the same bytes.
func (e *engine) prepare(ctx context.Context, j *queue.Job) (queue.Payload, error) {
	file, err := e.poll.fetchFile(ctx, j)
	if err != nil {
		return queue.Payload{}, err
	}
	return render.Prepared(j, file)
}

// leases returns the jobs the running dispatcher holds leased, with the end of each lease (see
// queue.Dispatcher.Leases); nil when no dispatcher runs.
func (e *engine) leases() map[string]time.Time {
	e.mu.Lock()
	d := e.disp
	e.mu.Unlock()
	if d == nil {
		return nil
	}
	return d.Leases()
}

// asLeased shows a job that the store holds as pending, but that the dispatcher leased (in
// memory), as leased until its lease ends: what operators see of a job whose attempt is under way.
func asLeased(j *queue.Job, leases map[string]time.Time) {
	if until, ok := leases[j.ID]; ok && j.State == queue.StatePending {
		j.State, j.DueAt = queue.StateLeased, until
	}
}

// wake tells a running dispatcher that jobs were enqueued.
func (e *engine) wake() {
	e.mu.Lock()
	d := e.disp
	e.mu.Unlock()
	if d != nil {
		d.Wake()
	}
}

// Destruct stops the observation worker and the dispatcher and closes the store. The usage pool
// calls it when the last config using this storage is cleaned up.
func (e *engine) Destruct() error {
	e.once.Do(func() { close(e.stop) })
	<-e.obs.done
	e.mu.Lock()
	if e.polling {
		<-e.poll.done
	}
	if e.disp != nil {
		e.disp.Stop()
		e.disp = nil
		dispatchersRunning.Add(-1)
	}
	e.mu.Unlock()
	e.ev.close()
	return errors.Join(e.journal.close(), e.store.Close())
}

// senderFunc adapts a function to queue.Sender.
type senderFunc func(ctx context.Context, j *queue.Job) queue.Result

func (f senderFunc) Send(ctx context.Context, j *queue.Job) queue.Result { return f(ctx, j) }
