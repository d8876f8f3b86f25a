package module

import (
	"errors"
	"fmt"

	"go.uber.org/zap"

	"github.com/faxhook/caddy-faxhook/queue"
)

// errStopping is returned to requests that arrive while the engine shuts down.
var errStopping = errors.New("faxhook is shutting down")

// recordSync records what a creating request said (a send's callback_url) before the client
// gets its answer: it writes it to the send journal, which a crash of Caddy cannot lose, and
// queues it for the tracker ahead of anything observed later, so that a later answer about the
// same fax never overtakes it. If the journal cannot be written, or the queue is full, it
// commits the observation to the store at once instead.
//
// In a fleet (PostgreSQL storage) it commits the send to the shared store before answering,
// since the client may ask another instance about the fax next (see the comment in the code).
//
// It does not wait for the disk: the store's commit (fsynced with sync_writes) follows within
// milliseconds, and a power loss in between can take the send's callback_url. Holding the answer
// until the fsync would not close that window, which opens when the fax service creates the fax,
// before faxhook even knows its id; it would only turn a lost callback_url into a send the client
// believes failed, and it would cost every send a disk flush.
func (e *engine) recordSync(o *Observation) error {
	entry, ok := entryOf(o)
	if !ok {
		return nil
	}
	sg, err := e.journal.append(entry)
	if err != nil {
		if !errors.Is(err, errStopping) {
			e.log.Load().Warn("send journal unavailable; committing the send before answering", zap.Error(err))
		}
		return e.recordObserved([]*Observation{o})
	}
	o.journaled = sg
	if e.fleet != nil {
		// In a fleet, the client may ask any instance about the fax as soon as it has its id:
		// the shared store must know the callback_url by then, or another instance that sees
		// the fax completed would send its webhook to the global sent_url instead.
		if err := e.recordObserved([]*Observation{o}); err != nil {
			return fmt.Errorf("recording a send in the shared store (it stays in the send journal for the next start): %w", err)
		}
		return nil
	}
	select {
	case <-e.stop:
	case e.obs.tasks <- task{run: func() *Observation { return o }}:
		return nil
	default:
	}
	// Stopping, or the backlog is full: commit it here.
	if err := e.recordObserved([]*Observation{o}); err != nil {
		return fmt.Errorf("recording a send (it stays in the send journal for the next start): %w", err)
	}
	return nil
}

// recordObserved records a batch of observations and keeps the send journal's account of the
// journaled ones: recorded; kept for the next replay when the store failed before recording
// them; or, when they can never be recorded, copied to the set-aside file and let go. A batch
// that the store refuses for lack of space is dropped, counted and logged (droppedForSpace), and
// nil is returned: a full disk never becomes an error of a proxied request.
func (e *engine) recordObserved(batch []*Observation) error {
	err := e.tracker.record(batch)
	for _, o := range batch {
		if o.journaled == nil {
			continue
		}
		switch {
		case o.failed != nil:
			e.journal.failedToRecord(o.journaled)
			continue
		case o.rejected != nil:
			e.setAside(o, o.rejected)
		}
		e.journal.recorded(o.journaled)
	}
	if errors.Is(err, queue.ErrNoSpace) {
		e.droppedForSpace(batch, err) // logged and counted; never an error to a client
		return nil
	}
	return err
}

// setAside keeps the journal entry of an observation that can never be recorded in the
// set-aside file, for an operator to look at.
func (e *engine) setAside(o *Observation, why error) {
	entry, ok := entryOf(o)
	if !ok {
		return
	}
	if err := e.journal.setAside(entry, why); err != nil {
		e.log.Load().Error("writing to the send journal's set-aside file", zap.Error(err))
	}
}

// replayJournal records the entries a previous run left in the send journal (some of them may
// be recorded already; recording them again changes nothing) and empties it. An entry that
// cannot be recorded is logged and set aside. It returns an error only when the store failed;
// the journal is then kept, whole, for the next try.
func (e *engine) replayJournal(entries []journalEntry) error {
	if len(entries) == 0 {
		return nil
	}
	rejected, err := e.recordEntries(entries)
	if err != nil {
		return fmt.Errorf("replaying %d entries of the send journal: %w", len(entries), err)
	}
	if err := e.journal.reset(); err != nil {
		e.log.Load().Error("removing the replayed send journal", zap.Error(err))
	}
	if rejected > 0 {
		e.log.Load().Error("replayed the send journal; entries that cannot be recorded were set aside",
			zap.Int("entries", len(entries)), zap.Int("set_aside", rejected),
			zap.String("file", e.journal.setAsidePath()))
		return nil
	}
	e.log.Load().Info("replayed the send journal", zap.Int("entries", len(entries)))
	return nil
}

// recordEntries records journal entries (in transactions sized to fit), sets aside those that
// can never be recorded and returns how many those were. Its error is the store's.
func (e *engine) recordEntries(entries []journalEntry) (int, error) {
	batch := make([]*Observation, len(entries))
	for i, en := range entries {
		batch[i] = en.observation()
	}
	if err := e.tracker.record(batch); err != nil {
		return 0, err
	}
	rejected := 0
	for _, o := range batch {
		if o.rejected != nil {
			rejected++
			e.setAside(o, o.rejected)
		}
	}
	return rejected, nil
}
