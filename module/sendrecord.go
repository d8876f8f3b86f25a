package module

import (
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/faxhook/caddy-faxhook/queue"
)

// errStopping is returned to requests that arrive while the engine shuts down.
var errStopping = errors.New("faxhook is shutting down")

// sendRecorder records what the send journal holds: the sends that creating requests said,
// before their answer goes out (recordSync), every batch the observation worker hands over
// (recordObserved), a previous run's journal at start (replayJournal) and, once space returns,
// the sends the store refused while they were journaled (replayFailedSends). It keeps the
// journal's account of each entry: recorded, kept for the next try, or set aside.
type sendRecorder struct {
	journal *journal
	tracker *tracker
	log     func() *zap.Logger // the newest config's logger
	storage string             // the storage's name, for logs
	// shared is true when a fleet shares the store (PostgreSQL): a send is then committed
	// before its answer goes out (recordSync).
	shared bool
	// handOff queues a journaled send for the observation worker ahead of anything observed
	// later (observations.put); false when the worker's queue is full or the engine stops.
	handOff func(o *Observation) bool

	lastDropLog atomic.Int64 // unix nanos of the last log line about dropped observations
}

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
func (sr *sendRecorder) recordSync(o *Observation) error {
	entry, ok := entryOf(o)
	if !ok {
		return nil
	}
	sg, err := sr.journal.append(entry)
	if err != nil {
		if !errors.Is(err, errStopping) {
			sr.log().Warn("send journal unavailable; committing the send before answering", zap.Error(err))
		}
		return sr.recordObserved([]*Observation{o})
	}
	o.journaled = sg
	if sr.shared {
		// In a fleet, the client may ask any instance about the fax as soon as it has its id:
		// the shared store must know the callback_url by then, or another instance that sees
		// the fax completed would send its webhook to the global sent_url instead.
		if err := sr.recordObserved([]*Observation{o}); err != nil {
			return fmt.Errorf("recording a send in the shared store (it stays in the send journal for the next start): %w", err)
		}
		return nil
	}
	if sr.handOff(o) {
		return nil
	}
	// Stopping, or the backlog is full: commit it here.
	if err := sr.recordObserved([]*Observation{o}); err != nil {
		return fmt.Errorf("recording a send (it stays in the send journal for the next start): %w", err)
	}
	return nil
}

// recordObserved records a batch of observations and keeps the send journal's account of the
// journaled ones: recorded; kept for the next replay when the store failed before recording
// them; or, when they can never be recorded, copied to the set-aside file and let go. A batch
// that the store refuses for lack of space is dropped, counted and logged (droppedForSpace), and
// nil is returned: a full disk never becomes an error of a proxied request.
func (sr *sendRecorder) recordObserved(batch []*Observation) error {
	err := sr.tracker.record(batch)
	for _, o := range batch {
		if o.journaled == nil {
			continue
		}
		switch {
		case o.failed != nil:
			sr.journal.failedToRecord(o.journaled)
			continue
		case o.rejected != nil:
			sr.setAside(o, o.rejected)
		}
		sr.journal.recorded(o.journaled)
	}
	if errors.Is(err, queue.ErrNoSpace) {
		sr.droppedForSpace(batch, err) // logged and counted; never an error to a client
		return nil
	}
	return err
}

// setAside keeps the journal entry of an observation that can never be recorded in the
// set-aside file, for an operator to look at.
func (sr *sendRecorder) setAside(o *Observation, why error) {
	entry, ok := entryOf(o)
	if !ok {
		return
	}
	if err := sr.journal.setAside(entry, why); err != nil {
		sr.log().Error("writing to the send journal's set-aside file", zap.Error(err))
	}
}

// replayJournal records the entries a previous run left in the send journal (some of them may
// be recorded already; recording them again changes nothing) and empties it. An entry that
// cannot be recorded is logged and set aside. It returns an error only when the store failed;
// the journal is then kept, whole, for the next try.
func (sr *sendRecorder) replayJournal(entries []journalEntry) error {
	if len(entries) == 0 {
		return nil
	}
	rejected, err := sr.recordEntries(entries)
	if err != nil {
		return fmt.Errorf("replaying %d entries of the send journal: %w", len(entries), err)
	}
	if err := sr.journal.reset(); err != nil {
		sr.log().Error("removing the replayed send journal", zap.Error(err))
	}
	if rejected > 0 {
		sr.log().Error("replayed the send journal; entries that cannot be recorded were set aside",
			zap.Int("entries", len(entries)), zap.Int("set_aside", rejected),
			zap.String("file", sr.journal.setAsidePath()))
		return nil
	}
	sr.log().Info("replayed the send journal", zap.Int("entries", len(entries)))
	return nil
}

// recordEntries records journal entries (in transactions sized to fit), sets aside those that
// can never be recorded and returns how many those were. Its error is the store's.
func (sr *sendRecorder) recordEntries(entries []journalEntry) (int, error) {
	batch := make([]*Observation, len(entries))
	for i, en := range entries {
		batch[i] = en.observation()
	}
	if err := sr.tracker.record(batch); err != nil {
		return 0, err
	}
	rejected := 0
	for _, o := range batch {
		if o.rejected != nil {
			rejected++
			sr.setAside(o, o.rejected)
		}
	}
	return rejected, nil
}

// replayFailedSends records the entries of the journal segments that hold an entry whose
// commit failed (recording an entry again changes nothing), and lets the journal forget those
// failures, unless another one happened meanwhile: then the segments wait for the next try.
func (sr *sendRecorder) replayFailedSends() error {
	segs, gen := sr.journal.failedSegments()
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
	if _, err := sr.recordEntries(entries); err != nil {
		return fmt.Errorf("recording sends kept in the send journal while the storage was full: %w", err)
	}
	sr.journal.clearFailed(segs, gen)
	sr.log().Info("recorded the sends that waited in the send journal for space", zap.String("storage", sr.storage))
	return nil
}

// dropLogEvery bounds the log lines about observations dropped for lack of space.
const dropLogEvery = 10 * time.Second

// droppedForSpace accounts for a batch that the store refused for lack of space: journaled
// sends stay in the send journal until space returns (spaceWatch.loop), the rest is dropped
// (counted, and logged at most every dropLogEvery). The proxied requests are not affected.
func (sr *sendRecorder) droppedForSpace(batch []*Observation, err error) {
	dropped := 0
	for _, o := range batch {
		if o.journaled == nil {
			dropped++
		}
	}
	metricDroppedObservations.Add(float64(dropped))
	now := time.Now().UnixNano()
	if last := sr.lastDropLog.Load(); now-last < int64(dropLogEvery) || !sr.lastDropLog.CompareAndSwap(last, now) {
		return
	}
	sr.log().Warn("storage short of space: observations not recorded (sends in the send journal are recorded once space returns)",
		zap.Int("dropped", dropped), zap.Int("journaled", len(batch)-dropped), zap.Error(err))
}
