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
			if e.degraded() {
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
			if f := e.store.Space().Free; free < 0 || f < free {
				free = f
			}
		}
		return float64(max(free, 0))
	})

	metricDroppedObservations = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "faxhook", Name: "storage_full_dropped_total",
		Help: "Observations not recorded because the storage was short of space. Sends whose callback_url is in the send journal are not counted: they are recorded at the next start.",
	})
)

func init() {
	allCollectors = append(allCollectors, metricStorageDegraded, metricStorageFree, metricDroppedObservations)
}

// spaceState is the engine's part in handling a full disk.
type spaceState struct {
	full atomic.Bool // the store refuses writes (or waits to open)

	// initMu guards the deferred initialization: reading the tracker's start time and replaying
	// the send journal, which need the store to write.
	initMu      sync.Mutex
	initPending []journalEntry // entries to replay once the store can write
	retry       chan struct{}  // signals that space may have returned

	lastDropLog atomic.Int64 // unix nanos of the last log line about dropped observations
}

// degraded reports whether the engine records nothing for lack of space.
func (e *engine) degraded() bool { return e.space.full.Load() || !e.store.Opened() }

// storeOptions returns the store options that report the free space to the engine.
func (e *engine) storeOptions(syncWrites bool, minFree int64, log *zap.Logger) queue.BadgerOptions {
	return queue.BadgerOptions{
		SyncWrites: syncWrites, Logger: log.Named("badger"), MinFreeSpace: minFree,
		OnSpace: e.onSpace, OnOpen: e.signalSpace,
	}
}

// onSpace is the store's report that writes stopped or resumed. It logs, emits the Caddy event
// and, when space returned, lets a deferred initialization run. It must not block: it runs on
// the goroutine that noticed the change.
func (e *engine) onSpace(st queue.SpaceStatus) {
	e.space.full.Store(st.Full)
	log := e.log.Load()
	fields := []zap.Field{zap.String("storage", e.dir), zap.Int64("free_bytes", st.Free), zap.Int64("min_free_space", st.Reserve)}
	if st.Full {
		log.Error("faxhook storage is short of free space: recording faxes and delivering webhooks pause until it has space again; the fax API is still proxied", fields...)
		e.ev.emit(EventStorageFull, e.spaceData(st))
		return
	}
	log.Info("faxhook storage has free space again: recording and delivery resume", fields...)
	e.ev.emit(EventStorageOK, e.spaceData(st))
	e.signalSpace()
}

// announceSpace emits faxhook_storage_full when a config's events start while the storage is
// short of space: a start on a full disk is reported too.
func (e *engine) announceSpace() {
	if e.degraded() {
		e.ev.emit(EventStorageFull, e.spaceData(e.store.Space()))
	}
}

func (e *engine) spaceData(st queue.SpaceStatus) map[string]any {
	return map[string]any{"storage": e.dir, "free_bytes": st.Free, "min_free_space": st.Reserve}
}

// signalSpace wakes the deferred initialization, if one waits.
func (e *engine) signalSpace() {
	select {
	case e.space.retry <- struct{}{}:
	default:
	}
}

// initStore reads the tracker's start time and replays the send journal's entries. When the
// store cannot write for lack of space, it leaves both to a goroutine that runs them once space
// returns, and reports success: Caddy starts, faxhook degraded.
func (e *engine) initStore(entries []journalEntry) error {
	e.space.retry = make(chan struct{}, 1)
	err := e.tryInit(entries)
	if !errors.Is(err, queue.ErrNoSpace) {
		return err
	}
	e.space.initPending = entries
	e.space.full.Store(true)
	e.log.Load().Warn("faxhook starts degraded: its storage is short of free space; it proxies the fax API and records again once space returns",
		zap.String("storage", e.dir), zap.Error(err))
	go e.initWhenSpace()
	return nil
}

func (e *engine) tryInit(entries []journalEntry) error {
	if err := e.tracker.init(); err != nil {
		return err
	}
	return e.replayJournal(entries)
}

// initWhenSpace runs the deferred initialization each time space may have returned, until it
// succeeds or the engine stops.
func (e *engine) initWhenSpace() {
	// The store's watcher checks every second; this is a fallback should a signal be missed.
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-e.stop:
			return
		case <-e.space.retry:
		case <-t.C:
		}
		if e.store.Space().Full || !e.store.Opened() {
			continue
		}
		e.space.initMu.Lock()
		err := e.tryInit(e.space.initPending)
		if err == nil {
			e.space.initPending = nil
		}
		e.space.initMu.Unlock()
		switch {
		case err == nil:
			e.space.full.Store(e.store.Space().Full)
			e.wake()
			return
		case !errors.Is(err, queue.ErrNoSpace) && !errors.Is(err, queue.ErrClosed):
			e.log.Load().Error("initializing faxhook storage now that it has space", zap.String("storage", e.dir), zap.Error(err))
		}
	}
}

// dropLogEvery bounds the log lines about observations dropped for lack of space.
const dropLogEvery = 10 * time.Second

// droppedForSpace accounts for a batch that the store refused for lack of space: journaled
// sends stay in the send journal for the next start, the rest is dropped (counted, and logged
// at most every dropLogEvery). The proxied requests are not affected.
func (e *engine) droppedForSpace(batch []*Observation, err error) {
	dropped := 0
	for _, o := range batch {
		if o.journaled == nil {
			dropped++
		}
	}
	metricDroppedObservations.Add(float64(dropped))
	now := time.Now().UnixNano()
	if last := e.space.lastDropLog.Load(); now-last < int64(dropLogEvery) || !e.space.lastDropLog.CompareAndSwap(last, now) {
		return
	}
	e.log.Load().Warn("storage short of space: observations not recorded (sends in the send journal are recorded at the next start)",
		zap.Int("dropped", dropped), zap.Int("journaled", len(batch)-dropped), zap.Error(err))
}
