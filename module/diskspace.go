package module

import (
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/faxhook/caddy-faxhook/queue"
)

// Caddy events of the storage's free space. Their data is {storage, free_bytes, min_free_space}.
const (
	// EventStorageFull is emitted when faxhook stops recording because its storage's file system
	// has less free space than min_free_space (and, once the config has started, when it
	// starts on such a disk). The fax API keeps being proxied.
	EventStorageFull = "faxhook_storage_full"
	// EventStorageOK is emitted when the storage has space again and recording resumes.
	EventStorageOK = "faxhook_storage_ok"
)

var (
	metricStorageDegraded = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: "faxhook", Name: "storage_degraded",
		Help: "1 while faxhook records nothing because its storage has less free space than min_free_space (the fax API is still proxied), else 0.",
	}, func() float64 {
		for _, e := range runningEngines() {
			if e.space.degraded() {
				return 1
			}
		}
		return 0
	})

	metricStorageFree = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: "faxhook", Name: "storage_free_bytes",
		Help: "Free space of the file system of faxhook's storage, as of the last check (at most a second old); the smallest if several storages are open.",
	}, func() float64 {
		free := int64(-1)
		for _, e := range runningEngines() {
			if f := e.store.Space().Free; f >= 0 && (free < 0 || f < free) {
				free = f
			}
		}
		return float64(max(free, 0))
	})

	metricDroppedObservations = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "faxhook", Name: "storage_full_dropped_total",
		Help: "Observations not recorded because the storage was short of space. Sends whose callback_url is in the send journal are not counted: they are recorded once space returns.",
	})
)

func init() {
	allCollectors = append(allCollectors, metricStorageDegraded, metricStorageFree, metricDroppedObservations)
}

// spaceWatch is what a full disk changes: it follows the store's reports of its free space,
// announces them (log, Caddy events, storage_degraded), and runs what had to wait for space: the
// initialization that a start on a full disk deferred, and the sends whose commit the store
// refused while they were in the send journal.
type spaceWatch struct {
	storage string // the storage's name, in logs and event data
	// store is set once opened: the watch is made first, since its methods are the store's
	// reports (storeOptions), and it reads the store only after that.
	store   engineStore
	log     func() *zap.Logger // the newest config's logger
	events  *eventEmitter
	tracker *tracker      // whose start time the initialization reads
	sends   *sendRecorder // which replays the send journal
	wake    func()        // tells the dispatcher that jobs may be due (delivery.wake)
	stop    chan struct{} // closed when the engine stops

	full atomic.Bool // the store refuses writes (or waits to open)

	// initMu guards the deferred initialization: reading the tracker's start time and replaying
	// the send journal, which need the store to write.
	initMu      sync.Mutex
	initPending []journalEntry // entries to replay once the store can write
	retry       chan struct{}  // signals that space may have returned
}

// newSpaceWatch returns the watch of the storage named storage; the engine sets its store and
// the parts it drives before start.
func newSpaceWatch(storage string, log func() *zap.Logger, events *eventEmitter, stop chan struct{}) *spaceWatch {
	return &spaceWatch{storage: storage, log: log, events: events, stop: stop, retry: make(chan struct{}, 1)}
}

// degraded reports whether faxhook records nothing for lack of space.
func (sw *spaceWatch) degraded() bool { return sw.full.Load() || !sw.store.Opened() }

// storeOptions returns the Badger options that report the free space to the watch.
func (sw *spaceWatch) storeOptions(syncWrites bool, minFree int64, log *zap.Logger) queue.BadgerOptions {
	return queue.BadgerOptions{
		SyncWrites: syncWrites, Logger: log.Named("badger"), MinFreeSpace: minFree,
		OnSpace: sw.onSpace, OnOpen: sw.signal,
	}
}

// onSpace is the store's report that writes stopped or resumed. It logs, emits the Caddy event
// and, when space returned, lets a deferred initialization run. It must not block: it runs on
// the goroutine that noticed the change.
func (sw *spaceWatch) onSpace(st queue.SpaceStatus) {
	sw.full.Store(st.Full)
	log := sw.log()
	fields := []zap.Field{zap.String("storage", sw.storage), zap.Int64("free_bytes", st.Free), zap.Int64("min_free_space", st.Reserve)}
	if st.Full {
		log.Error("faxhook storage is short of free space: recording faxes and delivering webhooks pause until it has space again; the fax API is still proxied", fields...)
		sw.events.emit(EventStorageFull, sw.data(st))
		return
	}
	log.Info("faxhook storage has free space again: recording and delivery resume", fields...)
	sw.events.emit(EventStorageOK, sw.data(st))
	sw.signal()
}

// announce emits faxhook_storage_full when a config's events start while the storage is short
// of space: a start on a full disk is reported too. It is the emitter's onUse.
func (sw *spaceWatch) announce() {
	if sw.degraded() {
		sw.events.emit(EventStorageFull, sw.data(sw.store.Space()))
	}
}

// data is the data of the storage events.
func (sw *spaceWatch) data(st queue.SpaceStatus) map[string]any {
	return map[string]any{"storage": sw.storage, "free_bytes": st.Free, "min_free_space": st.Reserve}
}

// signal wakes the deferred initialization, if one waits.
func (sw *spaceWatch) signal() {
	select {
	case sw.retry <- struct{}{}:
	default:
	}
}

// start reads the tracker's start time and replays the send journal's entries. When the store
// cannot write for lack of space, it leaves both to loop, which runs them once space returns,
// and reports success: Caddy starts, faxhook degraded.
func (sw *spaceWatch) start(entries []journalEntry) error {
	err := sw.tryInit(entries)
	switch {
	case err == nil:
		go sw.loop(false)
	case errors.Is(err, queue.ErrNoSpace):
		sw.initPending = entries
		sw.full.Store(true)
		sw.log().Warn("faxhook starts degraded: its storage is short of free space; it proxies the fax API and records again once space returns",
			zap.String("storage", sw.storage), zap.Error(err))
		go sw.loop(true)
	case sw.tracker.ready.Load():
		// The start time is read, the journal's replay failed: start all the same, and keep
		// the journal, whole, for the next start.
		sw.log().Error("replaying the send journal: the store failed; the journal is kept for the next start",
			zap.String("storage", sw.storage), zap.Error(err))
		go sw.loop(false)
	default:
		return err
	}
	return nil
}

// tryInit reads the tracker's start time, unless it was read already, and replays entries.
func (sw *spaceWatch) tryInit(entries []journalEntry) error {
	if !sw.tracker.ready.Load() { // a retry after the replay failed must not write since again
		if err := sw.tracker.init(); err != nil {
			return err
		}
	}
	return sw.sends.replayJournal(entries)
}

// loop runs, each time space returns, what had to wait for it: the initialization that a
// start on a full disk deferred (initPending), then the sends whose commit the store refused
// while they were in the send journal, which would otherwise wait for the next start.
func (sw *spaceWatch) loop(initPending bool) {
	// The store's watcher checks every second and signals; the ticker is a fallback for the
	// deferred initialization, should a signal be missed.
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-sw.stop:
			return
		case <-sw.retry:
		case <-t.C:
			if !initPending {
				continue
			}
		}
		if sw.store.Space().Full || !sw.store.Opened() {
			continue
		}
		var err error
		if initPending {
			sw.initMu.Lock()
			if err = sw.tryInit(sw.initPending); err == nil {
				sw.initPending, initPending = nil, false
			}
			sw.initMu.Unlock()
			if err == nil {
				sw.full.Store(sw.store.Space().Full)
				sw.wake()
			}
		}
		if err == nil {
			err = sw.sends.replayFailedSends()
		}
		if err != nil && !errors.Is(err, queue.ErrNoSpace) && !errors.Is(err, queue.ErrClosed) {
			sw.log().Error("recording what waited for space in faxhook storage", zap.String("storage", sw.storage), zap.Error(err))
		}
	}
}
