package queue

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"
	"go.uber.org/zap"
)

// Key prefixes of the Badger layout.
const (
	prefixState = "s/" // s/<key> → state record
	prefixJob   = "j/" // j/<id> → job JSON
	prefixDue   = "q/" // q/<8-byte big-endian unix nanos><id> → "" for pending jobs
	prefixLease = "l/" // l/<id> → "" for leased jobs
	prefixWait  = "w/" // w/<chain>\x00<8-byte seq><id> → "" for waiting jobs
	prefixChain = "c/" // c/<chain> → 8-byte unfinished count + 8-byte next seq
	prefixFin   = "f/" // f/<state>/<8-byte unix nanos of FinishedAt><id> → "" for finished jobs
)

// BadgerOptions tunes the embedded store.
type BadgerOptions struct {
	// SyncWrites makes every commit wait for fsync: a committed job survives power loss, not only
	// a process crash.
	SyncWrites bool
	// Logger receives Badger's own messages; nil discards them.
	Logger *zap.Logger
}

// Badger is the Store on an embedded Badger database.
type Badger struct {
	mu     sync.RWMutex // held for reading by every operation, for writing by Close
	db     *badger.DB
	closed bool
	dir    string
	stopGC chan struct{}
	gcDone chan struct{}
}

var _ Store = (*Badger)(nil)

// OpenBadger opens (creating if needed) the Badger database in dir. Badger allows one open per
// directory; a second open, in this process or another, fails with an error that says so.
func OpenBadger(dir string, opts BadgerOptions) (*Badger, error) {
	bo := badger.DefaultOptions(dir).
		WithSyncWrites(opts.SyncWrites).
		WithLogger(zapBadgerLogger{opts.Logger}).
		WithMemTableSize(16 << 20).
		WithNumMemtables(2).
		WithBlockCacheSize(16 << 20).
		WithIndexCacheSize(16 << 20).
		WithValueLogFileSize(64 << 20).
		WithNumCompactors(2).
		WithMetricsEnabled(false)
	db, err := badger.Open(bo)
	if err != nil {
		if strings.Contains(err.Error(), "Cannot acquire directory lock") {
			return nil, fmt.Errorf("opening faxhook storage at %s: it is locked by another process "+
				"(a running Caddy? use `caddy reload` to change its config, or give this instance its own storage directory): %w", dir, err)
		}
		return nil, fmt.Errorf("opening faxhook storage at %s: %w", dir, err)
	}
	b := &Badger{db: db, dir: dir, stopGC: make(chan struct{}), gcDone: make(chan struct{})}
	go b.gcLoop(10 * time.Minute)
	return b, nil
}

// Dir returns the directory the database lives in.
func (b *Badger) Dir() string { return b.dir }

func (b *Badger) gcLoop(every time.Duration) {
	defer close(b.gcDone)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-b.stopGC:
			return
		case <-t.C:
			b.mu.RLock()
			if !b.closed {
				for b.db.RunValueLogGC(0.5) == nil {
				}
			}
			b.mu.RUnlock()
		}
	}
}

// Close closes the database. Operations after Close fail with ErrClosed; Close waits for those
// under way.
func (b *Badger) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil
	}
	b.closed = true
	close(b.stopGC)
	<-b.gcDone
	if err := b.db.Close(); err != nil {
		return fmt.Errorf("closing faxhook storage at %s: %w", b.dir, err)
	}
	return nil
}

// Update runs fn in a read-write transaction, retrying on conflict.
func (b *Badger) Update(fn func(Tx) error) error {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.closed {
		return ErrClosed
	}
	var err error
	for try := 0; try < 10; try++ {
		err = b.db.Update(func(txn *badger.Txn) error { return fn(&badgerTx{txn: txn}) })
		if !errors.Is(err, badger.ErrConflict) {
			return err
		}
	}
	return fmt.Errorf("committing after 10 conflicts: %w", err)
}

// View runs fn in a read-only transaction.
func (b *Badger) View(fn func(Tx) error) error {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.closed {
		return ErrClosed
	}
	return b.db.View(func(txn *badger.Txn) error { return fn(&badgerTx{txn: txn}) })
}

type badgerTx struct{ txn *badger.Txn }

func (t *badgerTx) get(key []byte) ([]byte, error) {
	item, err := t.txn.Get(key)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	return item.ValueCopy(nil)
}

func (t *badgerTx) State(key string) ([]byte, error) { return t.get([]byte(prefixState + key)) }

func (t *badgerTx) PutState(key string, value []byte) error {
	return t.txn.Set([]byte(prefixState+key), value)
}

func (t *badgerTx) DeleteState(key string) error { return t.txn.Delete([]byte(prefixState + key)) }

func dueKey(at time.Time, id string) []byte {
	k := make([]byte, 0, len(prefixDue)+8+len(id))
	k = append(k, prefixDue...)
	k = binary.BigEndian.AppendUint64(k, unixNanos(at))
	return append(k, id...)
}

func (t *badgerTx) Job(id string) (*Job, error) {
	v, err := t.get([]byte(prefixJob + id))
	if err != nil {
		return nil, err
	}
	var j Job
	if err := json.Unmarshal(v, &j); err != nil {
		return nil, fmt.Errorf("decoding job %s: %w", id, err)
	}
	return &j, nil
}

func (t *badgerTx) Enqueue(job *Job) (bool, error) {
	if job.ID == "" {
		return false, errors.New("enqueueing a job without an ID")
	}
	if _, err := t.get([]byte(prefixJob + job.ID)); err == nil {
		return false, nil
	} else if !errors.Is(err, ErrNotFound) {
		return false, err
	}
	job.State = StatePending
	if job.Chain != "" {
		unfinished, _, err := t.chain(job.Chain)
		if err != nil {
			return false, err
		}
		if unfinished > 0 {
			job.State = StateWaiting
		}
	}
	return true, t.write(job, nil)
}

func (t *badgerTx) PutJob(job *Job) error {
	old, err := t.Job(job.ID)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return err
	}
	return t.write(job, old)
}

// chain reads a chain's unfinished job count and next sequence number.
func (t *badgerTx) chain(name string) (unfinished, next uint64, err error) {
	v, err := t.get([]byte(prefixChain + name))
	if errors.Is(err, ErrNotFound) {
		return 0, 0, nil
	}
	if err != nil || len(v) != 16 {
		return 0, 0, fmt.Errorf("reading chain %q: bad record (%v)", name, err)
	}
	return binary.BigEndian.Uint64(v), binary.BigEndian.Uint64(v[8:]), nil
}

func (t *badgerTx) putChain(name string, unfinished, next uint64) error {
	if unfinished == 0 {
		return t.txn.Delete([]byte(prefixChain + name))
	}
	v := binary.BigEndian.AppendUint64(nil, unfinished)
	return t.txn.Set([]byte(prefixChain+name), binary.BigEndian.AppendUint64(v, next))
}

func waitKey(chain string, seq uint64, id string) []byte {
	k := append([]byte(prefixWait+chain), 0)
	k = binary.BigEndian.AppendUint64(k, seq)
	return append(k, id...)
}

func finKey(state string, at time.Time, id string) []byte {
	k := append([]byte(prefixFin+state), '/')
	k = binary.BigEndian.AppendUint64(k, unixNanos(at))
	return append(k, id...)
}

// unixNanos orders times in keys; times before 1970 (the zero time) sort first.
func unixNanos(t time.Time) uint64 {
	if t.Before(time.Unix(0, 0)) {
		return 0
	}
	return uint64(t.UnixNano())
}

// chainStep keeps a chain's bookkeeping when a job enters it, leaves it, or finishes.
func (t *badgerTx) chainStep(job, old *Job) error {
	wasOpen := old != nil && !Finished(old.State)
	isOpen := !Finished(job.State)
	if job.Chain == "" || wasOpen == isOpen {
		return nil
	}
	unfinished, next, err := t.chain(job.Chain)
	if err != nil {
		return err
	}
	if isOpen { // enqueued, or replayed after it had finished
		if job.State == StateWaiting {
			if err := t.txn.Set(waitKey(job.Chain, next, job.ID), nil); err != nil {
				return err
			}
			next++
		}
		return t.putChain(job.Chain, unfinished+1, next)
	}
	// Finished: the next waiting job of the chain, if any, becomes pending.
	if unfinished > 0 {
		unfinished--
	}
	if err := t.putChain(job.Chain, unfinished, next); err != nil {
		return err
	}
	opts := badger.DefaultIteratorOptions
	opts.PrefetchValues = false
	opts.Prefix = append([]byte(prefixWait+job.Chain), 0)
	it := t.txn.NewIterator(opts)
	var key []byte
	it.Rewind()
	if it.Valid() {
		key = it.Item().KeyCopy(nil)
	}
	it.Close()
	if key == nil {
		return nil
	}
	nextJob, err := t.Job(string(key[len(opts.Prefix)+8:]))
	if err != nil {
		return fmt.Errorf("loading the next job of chain %q: %w", job.Chain, err)
	}
	if err := t.txn.Delete(key); err != nil {
		return err
	}
	prev := *nextJob
	nextJob.State, nextJob.DueAt = StatePending, job.DueAt
	return t.writeIndexes(nextJob, &prev)
}

// write stores job, moves its index entries from those of old (nil for a new job) and keeps its
// chain's bookkeeping.
func (t *badgerTx) write(job *Job, old *Job) error {
	if err := t.writeIndexes(job, old); err != nil {
		return err
	}
	return t.chainStep(job, old)
}

// writeIndexes stores job and moves its index entries from those of old.
func (t *badgerTx) writeIndexes(job *Job, old *Job) error {
	if old != nil {
		var key []byte
		switch old.State {
		case StatePending:
			key = dueKey(old.DueAt, old.ID)
		case StateLeased:
			key = []byte(prefixLease + old.ID)
		case StateDelivered, StateDead:
			key = finKey(old.State, old.FinishedAt, old.ID)
		}
		if key != nil {
			if err := t.txn.Delete(key); err != nil {
				return err
			}
		}
	}
	v, err := json.Marshal(job)
	if err != nil {
		return fmt.Errorf("encoding job %s: %w", job.ID, err)
	}
	if err := t.txn.Set([]byte(prefixJob+job.ID), v); err != nil {
		return err
	}
	switch job.State {
	case StatePending:
		return t.txn.Set(dueKey(job.DueAt, job.ID), nil)
	case StateLeased:
		return t.txn.Set([]byte(prefixLease+job.ID), nil)
	case StateDelivered, StateDead:
		return t.txn.Set(finKey(job.State, job.FinishedAt, job.ID), nil)
	}
	return nil
}

func (t *badgerTx) DeleteJob(id string) error {
	j, err := t.Job(id)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if !Finished(j.State) {
		return fmt.Errorf("deleting job %s: it is %s, not finished", id, j.State)
	}
	if err := t.txn.Delete(finKey(j.State, j.FinishedAt, j.ID)); err != nil {
		return err
	}
	return t.txn.Delete([]byte(prefixJob + id))
}

func (t *badgerTx) Due(now time.Time, limit int) ([]*Job, error) {
	opts := badger.DefaultIteratorOptions
	opts.PrefetchValues = false
	opts.Prefix = []byte(prefixDue)
	it := t.txn.NewIterator(opts)
	defer it.Close()
	end := dueKey(now, "\xff")
	var ids []string
	for it.Rewind(); it.Valid() && len(ids) < limit; it.Next() {
		k := it.Item().Key()
		if string(k) > string(end) {
			break
		}
		ids = append(ids, string(k[len(prefixDue)+8:]))
	}
	jobs := make([]*Job, 0, len(ids))
	for _, id := range ids {
		j, err := t.Job(id)
		if err != nil {
			return nil, fmt.Errorf("loading due job %s: %w", id, err)
		}
		jobs = append(jobs, j)
	}
	return jobs, nil
}

func (t *badgerTx) NextDue() (time.Time, bool, error) {
	opts := badger.DefaultIteratorOptions
	opts.PrefetchValues = false
	opts.Prefix = []byte(prefixDue)
	it := t.txn.NewIterator(opts)
	defer it.Close()
	it.Rewind()
	if !it.Valid() {
		return time.Time{}, false, nil
	}
	k := it.Item().Key()
	return time.Unix(0, int64(binary.BigEndian.Uint64(k[len(prefixDue):]))), true, nil
}

func (t *badgerTx) Leased() ([]string, error) {
	opts := badger.DefaultIteratorOptions
	opts.PrefetchValues = false
	opts.Prefix = []byte(prefixLease)
	it := t.txn.NewIterator(opts)
	defer it.Close()
	var ids []string
	for it.Rewind(); it.Valid(); it.Next() {
		ids = append(ids, string(it.Item().Key()[len(prefixLease):]))
	}
	return ids, nil
}

func (t *badgerTx) Jobs(fn func(*Job) bool) error {
	opts := badger.DefaultIteratorOptions
	opts.Prefix = []byte(prefixJob)
	it := t.txn.NewIterator(opts)
	defer it.Close()
	for it.Rewind(); it.Valid(); it.Next() {
		var j Job
		err := it.Item().Value(func(v []byte) error { return json.Unmarshal(v, &j) })
		if err != nil {
			return fmt.Errorf("decoding job %s: %w", it.Item().Key(), err)
		}
		if !fn(&j) {
			return nil
		}
	}
	return nil
}

func (t *badgerTx) Finished(state string, since time.Time, fn func(*Job) bool) error {
	if !Finished(state) {
		return fmt.Errorf("listing finished jobs: %q is not a final state", state)
	}
	opts := badger.DefaultIteratorOptions
	opts.PrefetchValues = false
	opts.Prefix = []byte(prefixFin + state + "/")
	it := t.txn.NewIterator(opts)
	defer it.Close()
	for it.Seek(finKey(state, since, "")); it.Valid(); it.Next() {
		id := string(it.Item().Key()[len(opts.Prefix)+8:])
		j, err := t.Job(id)
		if err != nil {
			return fmt.Errorf("loading finished job %s: %w", id, err)
		}
		if !fn(j) {
			return nil
		}
	}
	return nil
}

func (t *badgerTx) States(prefix string, fn func(key string, value []byte) bool) error {
	opts := badger.DefaultIteratorOptions
	opts.Prefix = []byte(prefixState + prefix)
	it := t.txn.NewIterator(opts)
	defer it.Close()
	for it.Rewind(); it.Valid(); it.Next() {
		v, err := it.Item().ValueCopy(nil)
		if err != nil {
			return err
		}
		if !fn(string(it.Item().Key()[len(prefixState):]), v) {
			return nil
		}
	}
	return nil
}

// zapBadgerLogger routes Badger's messages to zap; its chatty info level goes to debug.
type zapBadgerLogger struct{ l *zap.Logger }

func (z zapBadgerLogger) log() *zap.SugaredLogger {
	if z.l == nil {
		return zap.NewNop().Sugar()
	}
	return z.l.Sugar()
}

func (z zapBadgerLogger) Errorf(f string, a ...any)   { z.log().Errorf(strings.TrimSpace(f), a...) }
func (z zapBadgerLogger) Warningf(f string, a ...any) { z.log().Warnf(strings.TrimSpace(f), a...) }
func (z zapBadgerLogger) Infof(f string, a ...any)    { z.log().Debugf(strings.TrimSpace(f), a...) }
func (z zapBadgerLogger) Debugf(f string, a ...any)   { z.log().Debugf(strings.TrimSpace(f), a...) }
