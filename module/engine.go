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
	"github.com/faxhook/caddy-faxhook/queue/pgstore"
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

// engineStore is the store as the engine uses it: a queue.Store that reports its free space.
type engineStore interface {
	queue.Store
	// Space is the free space as of the last check.
	Space() queue.SpaceStatus
	// Opened reports whether the store is open (Badger defers its opening on a full disk).
	Opened() bool
}

// pgEngineStore is the PostgreSQL store as an engineStore: the database's disk is the
// server's, which faxhook does not watch (Space reports Free -1: unknown).
type pgEngineStore struct{ *pgstore.Store }

func (pgEngineStore) Space() queue.SpaceStatus { return queue.SpaceStatus{Free: -1} }
func (pgEngineStore) Opened() bool             { return true }

// storageSpec says which store an engine opens: a Badger directory, or a PostgreSQL database.
type storageSpec struct {
	// key names the storage in the engine pool, the admin API and logs: the directory, or the
	// PostgreSQL URL without its password (RedactDSN).
	key        string
	dir        string          // the Badger directory; empty for PostgreSQL
	dsn        string          // the PostgreSQL URL, placeholders replaced; never shown
	postgres   *PostgresConfig // options of the PostgreSQL store
	syncWrites bool
	minFree    int64 // Badger's free-space reserve (0: the default)
}

// engine is the pooled part of the app, an assembly of the store, the tracker, the observation
// worker (observations), the poller, the emitter of Caddy events and the dispatcher. Exactly one
// exists per storage (directory or database) in a process.
type engine struct {
	dir      string // the storage's name as shown (storageSpec.key)
	store    engineStore
	badger   *queue.Badger // the store when it is Badger, else nil
	fleet    *fleet        // the lead of poller and janitor over PostgreSQL, else nil
	instance string        // the dispatcher's instance name over PostgreSQL
	log      atomic.Pointer[zap.Logger]
	cfg      atomic.Pointer[settings]
	sender   atomic.Pointer[httpsend.Sender]
	tracker  *tracker
	ev       eventEmitter // Caddy events of delivery failures (events.go)
	space    spaceState   // what a full disk changes (diskspace.go)
	vias     viaCache     // client requests that revealed received faxes, in memory only (via.go)

	mu      sync.Mutex
	disp    *queue.Dispatcher
	poll    *poller
	polling bool          // the poller's loop was started
	obs     *observations // the observation worker (observe.go)
	journal *journal      // what creating requests said, until the tracker recorded it
	stop    chan struct{}
	once    sync.Once
}

// loadEngine returns the engine for the storage spec names, opening it on first use. The
// first config to open a storage sets its options (Badger's free-space reserve, PostgreSQL's
// pool).
func loadEngine(spec storageSpec, log *zap.Logger) (*engine, error) {
	v, loaded, err := engines.LoadOrNew(spec.key, func() (caddy.Destructor, error) {
		e := &engine{
			dir:  spec.key,
			stop: make(chan struct{}),
		}
		e.log.Store(log)
		e.ev.onUse = e.announceSpace
		journalDir := spec.dir
		if spec.dsn != "" {
			fs, err := openFleetStore(spec.dsn, spec.postgres, log)
			if err != nil {
				return nil, err
			}
			e.store, journalDir = pgEngineStore{fs.store}, fs.journalDir
			if spec.postgres != nil {
				e.instance = spec.postgres.Instance
			}
			e.fleet = newFleet(fs.store, e.log.Load)
		} else {
			st, err := queue.OpenBadger(spec.dir, e.storeOptions(spec.syncWrites, spec.minFree, log))
			if err != nil {
				return nil, err
			}
			e.store, e.badger = st, st
		}
		st := e.store
		e.cfg.Store(&settings{schedule: queue.DefaultSchedule})
		e.tracker = &tracker{eng: e}
		e.poll = newPoller(e)
		e.obs = newObservations(e, spec.syncWrites)
		j, entries, err := openJournal(journalDir)
		if err != nil {
			e.fleet.close()
			st.Close()
			return nil, err
		}
		e.journal = j
		if err := e.initStore(entries); err != nil { // deferred while the disk is full
			j.close()
			e.fleet.close()
			st.Close()
			return nil, fmt.Errorf("opening faxhook storage at %s: %w", spec.key, err)
		}
		go e.obs.loop()
		return e, nil
	})
	if err != nil {
		return nil, err
	}
	if loaded {
		log.Debug("sharing faxhook storage with the running config", zap.String("storage", spec.key))
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
	jan := queue.JanitorOptions{
		DeliveredRetention: s.deliveredRetention, DeadRetention: s.deadRetention, Logger: log.Named("janitor"),
	}
	if e.fleet != nil {
		e.fleet.startJanitor(jan) // sweeps while this instance leads the fleet
	} else {
		e.badger.StartJanitor(jan)
	}
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
		Instance:  e.instance,
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
	if e.fleet != nil {
		e.fleet.close()
	}
	return errors.Join(e.journal.close(), e.store.Close())
}

// senderFunc adapts a function to queue.Sender.
type senderFunc func(ctx context.Context, j *queue.Job) queue.Result

func (f senderFunc) Send(ctx context.Context, j *queue.Job) queue.Result { return f(ctx, j) }
