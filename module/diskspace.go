package module

import (
	"errors"
	"fmt"
	"slices"
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
// store cannot write for lack of space, it leaves both to spaceLoop, which runs them once space
// returns, and reports success: Caddy starts, faxhook degraded.
func (e *engine) initStore(entries []journalEntry) error {
	e.space.retry = make(chan struct{}, 1)
	err := e.tryInit(entries)
	switch {
	case err == nil:
		go e.spaceLoop(false)
	case errors.Is(err, queue.ErrNoSpace):
		e.space.initPending = entries
		e.space.full.Store(true)
		e.log.Load().Warn("faxhook starts degraded: its storage is short of free space; it proxies the fax API and records again once space returns",
			zap.String("storage", e.dir), zap.Error(err))
		go e.spaceLoop(true)
	case e.tracker.ready.Load():
		// The start time is read, the journal's replay failed: start all the same, and keep
		// the journal, whole, for the next start.
		e.log.Load().Error("replaying the send journal: the store failed; the journal is kept for the next start",
			zap.String("storage", e.dir), zap.Error(err))
		go e.spaceLoop(false)
	default:
		return err
	}
	return nil
}

// tryInit reads the tracker's start time, unless it was read already, and replays entries.
func (e *engine) tryInit(entries []journalEntry) error {
	if !e.tracker.ready.Load() { // a retry after the replay failed must not write since again
		if err := e.tracker.init(); err != nil {
			return err
		}
	}
	return e.replayJournal(entries)
}

// spaceLoop runs, each time space returns, what had to wait for it: the initialization that a
// start on a full disk deferred (initPending), then the sends whose commit the store refused
// while they were in the send journal, which would otherwise wait for the next start.
func (e *engine) spaceLoop(initPending bool) {
	// The store's watcher checks every second and signals; the ticker is a fallback for the
	// deferred initialization, should a signal be missed.
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-e.stop:
			return
		case <-e.space.retry:
		case <-t.C:
			if !initPending {
				continue
			}
		}
		if e.store.Space().Full || !e.store.Opened() {
			continue
		}
		var err error
		if initPending {
			e.space.initMu.Lock()
			if err = e.tryInit(e.space.initPending); err == nil {
				e.space.initPending, initPending = nil, false
			}
			e.space.initMu.Unlock()
			if err == nil {
				e.space.full.Store(e.store.Space().Full)
				e.wake()
			}
		}
		if err == nil {
			err = e.replayFailedSends()
		}
		if err != nil && !errors.Is(err, queue.ErrNoSpace) && !errors.Is(err, queue.ErrClosed) {
			e.log.Load().Error("recording what waited for space in faxhook storage", zap.String("storage", e.dir), zap.Error(err))
		}
	}
}

// replayFailedSends records the entries of the journal segments that hold an entry whose
// commit failed (recording an entry again changes nothing), and lets the journal forget those
// failures, unless another one happened meanwhile: then the segments wait for the next try.
func (e *engine) replayFailedSends() error {
	segs, gen := e.journal.failedSegments()
	if len(segs) == 0 {
		return nil
	}
	var entries []journalEntry
	for _, sg := range segs {
		es, err := readSegment(sg.path)
		if err != nil {
			return err
		}
		entries = append(entries, es...)
	}
	if _, err := e.recordEntries(entries); err != nil {
		return fmt.Errorf("recording sends kept in the send journal while the storage was full: %w", err)
	}
	e.journal.clearFailed(segs, gen)
	e.log.Load().Info("recorded the sends that waited in the send journal for space", zap.String("storage", e.dir))
	return nil
}

// failedSegments returns the segments holding an entry whose commit failed, and the journal's
// failure count, for clearFailed.
func (j *journal) failedSegments() ([]*segment, uint64) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.closed {
		return nil, 0
	}
	var segs []*segment
	for _, sg := range append(j.old, j.cur) {
		if sg.failed {
			segs = append(segs, sg)
		}
	}
	return segs, j.failures
}

// clearFailed marks segs as holding no failed entry any more, unless an entry failed since
// failedSegments returned gen; full segments with no entry outstanding are deleted.
func (j *journal) clearFailed(segs []*segment, gen uint64) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.closed || j.failures != gen {
		return
	}
	for _, sg := range segs {
		sg.failed = false
		if sg == j.cur || sg.outstanding > 0 {
			continue
		}
		if i := slices.Index(j.old, sg); i >= 0 {
			j.old = slices.Delete(j.old, i, i+1)
			sg.remove()
		}
	}
}

// dropLogEvery bounds the log lines about observations dropped for lack of space.
const dropLogEvery = 10 * time.Second

// droppedForSpace accounts for a batch that the store refused for lack of space: journaled
// sends stay in the send journal until space returns (spaceLoop), the rest is dropped (counted, and logged
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
	e.log.Load().Warn("storage short of space: observations not recorded (sends in the send journal are recorded once space returns)",
		zap.Int("dropped", dropped), zap.Int("journaled", len(batch)-dropped), zap.Error(err))
}
