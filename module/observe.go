package module

import (
	"errors"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/faxhook/caddy-faxhook/queue"
)

// observations is the observation worker: a bounded queue of tasks that parse what the handler
// and the poller saw, run one at a time in arrival order, their results recorded by the tracker
// in batches, so that a burst of observations costs one commit.
type observations struct {
	tasks   chan task
	backlog atomic.Int64 // bytes of the tasks queued in tasks (see maxBacklogBytes)
	linger  time.Duration
	log     func() *zap.Logger               // the newest config's logger
	record  func(batch []*Observation) error // records a batch (sendRecorder.recordObserved)
	stop    chan struct{}                    // closed when the engine stops
	done    chan struct{}                    // closed when loop returns
}

// newObservations returns an observation worker that records with record until stop is
// closed; it lingers for more work before a commit when every commit waits for the disk
// (syncWrites).
func newObservations(record func([]*Observation) error, log func() *zap.Logger, stop chan struct{}, syncWrites bool) *observations {
	ob := &observations{
		tasks: make(chan task, 4096), log: log, record: record,
		stop: stop, done: make(chan struct{}),
	}
	if syncWrites {
		ob.linger = syncLinger
	}
	return ob
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
func (ob *observations) submit(size int, run func() *Observation) bool {
	select {
	case <-ob.stop:
		return false
	default:
	}
	if ob.backlog.Add(int64(size)) > maxBacklogBytes {
		ob.backlog.Add(-int64(size))
		ob.dropped("bytes")
		return false
	}
	select {
	case ob.tasks <- task{size: size, run: run}:
		return true
	default:
		ob.backlog.Add(-int64(size))
		ob.dropped("tasks")
		return false
	}
}

// put queues an observation already parsed (a journaled send) without blocking and without
// counting it in the backlog's bytes: it holds no captured response. It reports false when the
// queue is full or the engine stops; the caller then records it itself.
func (ob *observations) put(o *Observation) bool {
	select {
	case <-ob.stop:
	case ob.tasks <- task{run: func() *Observation { return o }}:
		return true
	default:
	}
	return false
}

// dropped logs and counts an observation dropped because the worker's queue is full.
func (ob *observations) dropped(bound string) {
	metricCaptureSkipped.WithLabelValues("backlog_full").Inc()
	ob.log().Warn("observation backlog full; dropping an observation",
		zap.String("bound", bound), zap.Int64("max_backlog_bytes", maxBacklogBytes))
}

// syncLinger is how long, with sync_writes, the observation worker waits for more observations
// before it commits a batch: every commit waits for the disk and costs CPU in the kernel, so
// sends and polls arriving a few at a time share one fsync instead of paying one each. Webhooks
// fire that much later, which no receiver notices; a send is safe from a crash meanwhile (send
// journal), not from a power loss.
const syncLinger = 25 * time.Millisecond

// loop runs observation tasks in arrival order and records their results in batches, so
// that a burst of observations costs one commit.
func (ob *observations) loop() {
	defer close(ob.done)
	for {
		var batch []*Observation
		size := 0
		take := func(t task) {
			ob.backlog.Add(-int64(t.size))
			size += t.size
			if o := runTask(t.run, ob.log()); o != nil {
				batch = append(batch, o)
			}
		}
		select {
		case <-ob.stop:
			ob.drain()
			return
		case t := <-ob.tasks:
			take(t)
		}
		var linger *time.Timer
		if ob.linger > 0 && len(batch) > 0 {
			linger = time.NewTimer(ob.linger)
		}
	more:
		for len(batch) < maxBatchLen && size < maxBatchBytes {
			select {
			case t := <-ob.tasks:
				take(t)
				continue
			default:
			}
			if linger == nil {
				break
			}
			select {
			case t := <-ob.tasks:
				take(t)
			case <-linger.C:
				break more
			case <-ob.stop:
				break more
			}
		}
		if linger != nil {
			linger.Stop()
		}
		if len(batch) == 0 {
			continue
		}
		if err := ob.record(batch); err != nil {
			if errors.Is(err, queue.ErrClosed) {
				return
			}
			ob.log().Error("recording observed fax states", zap.Error(err))
		}
	}
}

// drain records the observations still queued when the engine stops.
func (ob *observations) drain() {
	var batch []*Observation
	for {
		select {
		case t := <-ob.tasks:
			ob.backlog.Add(-int64(t.size))
			if o := runTask(t.run, ob.log()); o != nil {
				batch = append(batch, o)
			}
			if len(batch) < maxBatchLen {
				continue
			}
		default:
		}
		if len(batch) > 0 {
			if err := ob.record(batch); err != nil {
				ob.log().Error("recording observed fax states at shutdown", zap.Error(err))
			}
		}
		if len(ob.tasks) == 0 {
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
