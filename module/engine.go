package module

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/faxhook/caddy-faxhook/queue"
	"github.com/faxhook/caddy-faxhook/queue/pgstore"
)

// engines pools one engine per storage directory across config loads: Badger allows one open per
// directory, and a reload provisions the new config before the old one is cleaned up.
var engines = caddy.NewUsagePool()

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

// engine is the pooled part of the app: the assembly of the store and of the parts that work
// over it, which it builds, starts and stops. Exactly one exists per storage (directory or
// database) in a process. The parts depend on one another only through the fields each names;
// none reaches back into the engine.
type engine struct {
	dir      string // the storage's name as shown (storageSpec.key)
	store    engineStore
	badger   *queue.Badger // the store when it is Badger, else nil
	fleet    *fleet        // the lead of poller and janitor over PostgreSQL, else nil
	instance string        // the dispatcher's instance name over PostgreSQL
	journal  *journal      // what creating requests said, until the tracker recorded it
	// log and cfg are the newest started config's logger and settings; the parts read them
	// through the Load funcs they hold, so that a reload reaches every part at once.
	log atomic.Pointer[zap.Logger]
	cfg atomic.Pointer[settings]

	ev       eventEmitter  // Caddy events (events.go)
	space    *spaceWatch   // what a full disk changes (diskspace.go)
	tracker  *tracker      // each fax's last known state; the one place that enqueues (tracker.go)
	delivery *delivery     // the dispatcher (delivery.go)
	poll     *poller       // asks the fax service about faxes in flight (poller.go)
	sends    *sendRecorder // records through the send journal (sendrecord.go)
	obs      *observations // the observation worker (observe.go)
	vias     viaCache      // client requests that revealed received faxes, in memory only (via.go)

	stop chan struct{} // closed by Destruct: every loop of the parts returns
	once sync.Once
}

// loadEngine returns the engine for the storage spec names, opening it on first use. The
// first config to open a storage sets its options (Badger's free-space reserve, PostgreSQL's
// pool).
func loadEngine(spec storageSpec, log *zap.Logger) (*engine, error) {
	v, loaded, err := engines.LoadOrNew(spec.key, func() (caddy.Destructor, error) {
		return openEngine(spec, log)
	})
	if err != nil {
		return nil, err
	}
	if loaded {
		log.Debug("sharing faxhook storage with the running config", zap.String("storage", spec.key))
	}
	return v.(*engine), nil
}

// newEngine returns an engine for the storage named key with the parts that come before its
// store: the emitter and the space watch, whose methods are the store's reports.
func newEngine(key string, log *zap.Logger) *engine {
	e := &engine{dir: key, stop: make(chan struct{})}
	e.log.Store(log)
	e.cfg.Store(&settings{schedule: queue.DefaultSchedule})
	e.space = newSpaceWatch(key, e.log.Load, &e.ev, e.stop)
	e.ev.onUse = e.space.announce
	return e
}

// openEngine opens the storage spec names and its send journal, assembles the engine over
// them, replays the journal (or defers that until the disk has space) and starts the
// observation worker. The poller and the dispatcher start with the first config (start).
func openEngine(spec storageSpec, log *zap.Logger) (*engine, error) {
	e := newEngine(spec.key, log)
	var st engineStore
	journalDir := spec.dir
	if spec.dsn != "" {
		fs, err := openFleetStore(spec.dsn, spec.postgres, log)
		if err != nil {
			return nil, err
		}
		st, journalDir = pgEngineStore{fs.store}, fs.journalDir
		if spec.postgres != nil {
			e.instance = spec.postgres.Instance
		}
		e.fleet = newFleet(fs.store, e.log.Load)
	} else {
		b, err := queue.OpenBadger(spec.dir, e.space.storeOptions(spec.syncWrites, spec.minFree, log))
		if err != nil {
			return nil, err
		}
		st, e.badger = b, b
	}
	j, entries, err := openJournal(journalDir)
	if err != nil {
		e.fleet.close()
		st.Close()
		return nil, err
	}
	e.assemble(st, j, spec.syncWrites)
	if err := e.space.start(entries); err != nil { // deferred while the disk is full
		j.close()
		e.fleet.close()
		st.Close()
		return nil, fmt.Errorf("opening faxhook storage at %s: %w", spec.key, err)
	}
	go e.obs.loop()
	return e, nil
}

// assemble builds the parts over the opened store st and the send journal j, and hands the
// space watch the parts it drives. Nothing runs yet. The parts call one another through what
// each names: the tracker wakes the dispatcher, the dispatcher asks the poller for PDFs, the
// observation worker and the send recorder hand work to each other.
func (e *engine) assemble(st engineStore, j *journal, syncWrites bool) {
	e.store, e.journal = st, j
	e.delivery = &delivery{store: st, cfg: e.cfg.Load, instance: e.instance,
		onOutcome: outcomes{events: &e.ev, cfg: e.cfg.Load}.onOutcome, onHealth: onHealth(&e.ev)}
	e.tracker = newTracker(st, e.cfg.Load, e.log.Load, e.delivery.wake)
	e.poll = newPoller(e.cfg.Load, e.log.Load, e.tracker, &e.vias, e.fleet.leads, e.stop)
	e.delivery.fetchFile = e.poll.fetchFile
	e.sends = &sendRecorder{journal: j, tracker: e.tracker, log: e.log.Load, storage: e.dir, shared: e.fleet != nil}
	e.obs = newObservations(e.sends.recordObserved, e.log.Load, e.stop, syncWrites)
	e.sends.handOff = e.obs.put
	sw := e.space
	sw.store, sw.tracker, sw.sends, sw.wake = st, e.tracker, e.sends, e.delivery.wake
}

// start applies s and starts the janitor, the poller and the dispatcher, those not running yet.
func (e *engine) start(s settings, log *zap.Logger) error {
	e.log.Store(log)
	e.cfg.Store(&s)
	jan := queue.JanitorOptions{
		DeliveredRetention: s.deliveredRetention, DeadRetention: s.deadRetention, Logger: log.Named("janitor"),
	}
	if e.fleet != nil {
		e.fleet.startJanitor(jan) // sweeps while this instance leads the fleet
	} else {
		e.badger.StartJanitor(jan)
	}
	e.poll.start()
	return e.delivery.start(s, log)
}

// Destruct stops the observation worker, the poller and the dispatcher and closes the store.
// The usage pool calls it when the last config using this storage is cleaned up.
func (e *engine) Destruct() error {
	e.once.Do(func() { close(e.stop) })
	<-e.obs.done
	e.poll.wait()
	e.delivery.stop()
	e.ev.close()
	e.fleet.close()
	return errors.Join(e.journal.close(), e.store.Close())
}
