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

// engine is the pooled part of the app: the store, the tracker, the observation worker and the
// dispatcher. Exactly one exists per storage directory in a process.
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
	polling bool // the poller's loop was started
	tasks   chan task
	backlog atomic.Int64 // bytes of the tasks queued in tasks (see maxBacklogBytes)
	journal *journal     // what creating requests said, until the tracker recorded it
	linger  time.Duration
	stop    chan struct{}
	done    chan struct{}
	once    sync.Once
}

// loadEngine returns the engine for dir, opening it on first use.
// minFree is the store's free-space reserve (0: the default); the first config to open dir sets it.
func loadEngine(dir string, syncWrites bool, minFree int64, log *zap.Logger) (*engine, error) {
	v, loaded, err := engines.LoadOrNew(dir, func() (caddy.Destructor, error) {
		e := &engine{
			dir:   dir,
			tasks: make(chan task, 4096),
			stop:  make(chan struct{}), done: make(chan struct{}),
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
		if syncWrites {
			e.linger = syncLinger
		}
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
		go e.observeLoop()
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

// task is queued work of the observation worker: run parses what was observed. size is the
// number of bytes it holds (a captured response) until it runs.
type task struct {
	size int
	run  func() *Observation
}

// Bounds on the memory of observations that wait for the worker: the queue holds at most
// maxBacklogBytes of captured responses (up to 4096 tasks), and one batch, parsed and waiting for
// its commit, at most maxBatchBytes (up to 256 observations). A burst of large responses (each up
// to max_capture, 1 MiB by default) then costs at most about 72 MiB; past the queue's bound,
// observations are dropped and counted, as when the queue is full.
const (
	maxBacklogBytes = 64 << 20
	maxBatchBytes   = 8 << 20
	maxBatchLen     = 256
)

// submit queues an observation task holding size bytes, without blocking. It reports false,
// and the observation is dropped (logged and counted), when the queue is full or stopping.
func (e *engine) submit(size int, run func() *Observation) bool {
	select {
	case <-e.stop:
		return false
	default:
	}
	if e.backlog.Add(int64(size)) > maxBacklogBytes {
		e.backlog.Add(-int64(size))
		e.dropped("bytes")
		return false
	}
	select {
	case e.tasks <- task{size: size, run: run}:
		return true
	default:
		e.backlog.Add(-int64(size))
		e.dropped("tasks")
		return false
	}
}

// dropped logs and counts an observation dropped because the worker's queue is full.
func (e *engine) dropped(bound string) {
	metricCaptureSkipped.WithLabelValues("backlog_full").Inc()
	e.log.Load().Warn("observation backlog full; dropping an observation",
		zap.String("bound", bound), zap.Int64("max_backlog_bytes", maxBacklogBytes))
}

// syncLinger is how long, with sync_writes, the observation worker waits for more observations
// before it commits a batch: every commit waits for the disk and costs CPU in the kernel, so
// sends and polls arriving a few at a time share one fsync instead of paying one each. Webhooks
// fire that much later, which no receiver notices; a send is safe from a crash meanwhile (send
// journal), not from a power loss.
const syncLinger = 25 * time.Millisecond

// observeLoop runs observation tasks in arrival order and records their results in batches, so
// that a burst of observations costs one commit.
func (e *engine) observeLoop() {
	defer close(e.done)
	for {
		var batch []*Observation
		size := 0
		take := func(t task) {
			e.backlog.Add(-int64(t.size))
			size += t.size
			if o := runTask(t.run, e.log.Load()); o != nil {
				batch = append(batch, o)
			}
		}
		select {
		case <-e.stop:
			e.drain()
			return
		case t := <-e.tasks:
			take(t)
		}
		var linger *time.Timer
		if e.linger > 0 && len(batch) > 0 {
			linger = time.NewTimer(e.linger)
		}
	more:
		for len(batch) < maxBatchLen && size < maxBatchBytes {
			select {
			case t := <-e.tasks:
				take(t)
				continue
			default:
			}
			if linger == nil {
				break
			}
			select {
			case t := <-e.tasks:
				take(t)
			case <-linger.C:
				break more
			case <-e.stop:
				break more
			}
		}
		if linger != nil {
			linger.Stop()
		}
		if len(batch) == 0 {
			continue
		}
		if err := e.recordObserved(batch); err != nil {
			if errors.Is(err, queue.ErrClosed) {
				return
			}
			e.log.Load().Error("recording observed fax states", zap.Error(err))
		}
	}
}

// drain records the observations still queued when the engine stops.
func (e *engine) drain() {
	var batch []*Observation
	for {
		select {
		case t := <-e.tasks:
			e.backlog.Add(-int64(t.size))
			if o := runTask(t.run, e.log.Load()); o != nil {
				batch = append(batch, o)
			}
			if len(batch) < maxBatchLen {
				continue
			}
		default:
		}
		if len(batch) > 0 {
			if err := e.recordObserved(batch); err != nil {
				e.log.Load().Error("recording observed fax states at shutdown", zap.Error(err))
			}
		}
		if len(e.tasks) == 0 {
			return
		}
		batch = batch[:0]
	}
}

func runTask(t func() *Observation, log *zap.Logger) (o *Observation) {
	defer func() {
		if r := recover(); r != nil {
			log.Error("observation task panicked", zap.Any("panic", r))
			o = nil
		}
	}()
	return t()
}

// Destruct stops the observation worker and the dispatcher and closes the store. The usage pool
// calls it when the last config using this storage is cleaned up.
func (e *engine) Destruct() error {
	e.once.Do(func() { close(e.stop) })
	<-e.done
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
