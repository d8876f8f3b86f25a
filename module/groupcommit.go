package module

import (
	"errors"
	"time"
)

// syncRecord is one observation that a request waits to see committed.
type syncRecord struct {
	obs  *Observation
	done chan error
}

// errStopping is returned to requests that arrive while the engine shuts down.
var errStopping = errors.New("faxhook is shutting down")

// recordSync records o durably and returns once it is committed. Concurrent callers share
// commits (group commit): while one commit waits for fsync, the next callers queue up and are
// committed together, so a burst of sends costs a few fsyncs, not one each.
func (e *engine) recordSync(o *Observation) error {
	r := syncRecord{obs: o, done: make(chan error, 1)}
	select {
	case e.syncs <- r:
	case <-e.stop:
		return errStopping
	case <-time.After(10 * time.Second):
		return errors.New("recording a send: the commit queue is full")
	}
	select {
	case err := <-r.done:
		return err
	case <-e.syncDone:
		return errStopping
	}
}

// syncLoop commits queued synchronous records in batches until the engine stops.
func (e *engine) syncLoop() {
	defer close(e.syncDone)
	for {
		var batch []syncRecord
		select {
		case <-e.stop:
			return
		case r := <-e.syncs:
			batch = append(batch, r)
		}
	more:
		for len(batch) < 256 {
			select {
			case r := <-e.syncs:
				batch = append(batch, r)
			default:
				break more
			}
		}
		obs := make([]*Observation, len(batch))
		for i, r := range batch {
			obs[i] = r.obs
		}
		err := e.tracker.record(obs)
		for _, r := range batch {
			r.done <- err
		}
	}
}
