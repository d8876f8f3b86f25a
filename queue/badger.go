package queue

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"
	"go.uber.org/zap"
)

// Key layout of the Badger store. Every index a query or the dispatcher reads is kept in the
// transaction that changes the job, so an index never disagrees with the job records.
const (
	prefixState = "s/" // s/<key> → state record
	prefixJob   = "j/" // j/<id> → job head, with the body if it is small (see encodeJob)
	prefixBody  = "b/" // b/<id> → job body, its Payload, when it is not in the head (see encodeJob)
	prefixDue   = "q/" // q/<destination>\x00<8-byte big-endian unix nanos of DueAt><id> → "" for pending jobs
	prefixWait  = "w/" // w/<chain, NUL escaped: waitPrefix>\x00<8-byte seq><id> → "" for waiting jobs
	prefixChain = "c/" // c/<chain> → tail record: see chainRec
	prefixFin   = "f/" // f/<state>/<8-byte unix nanos of FinishedAt><id> → "" for finished jobs
	keyCounts   = "m/counts"
	keyFormat   = "v/format" // the layout's version, formatVersion

	keyFlushMarker = "x/flush" // written and dropped at once to make Badger flush its memtables
)

// formatVersion is the version of the key layout above, stored under keyFormat. A store
// without it is either empty (and gets it) or was written by a development build before the
// layout was versioned, which OpenBadger refuses: no release ever wrote one.
const formatVersion = "2"

// BadgerOptions tunes the embedded store.
type BadgerOptions struct {
	// SyncWrites makes every Update wait, after its commit, until the commit is on disk
	// (fsync): a committed job survives power loss, not only a process crash. UpdateLazy never
	// waits.
	SyncWrites bool
	// Logger receives Badger's own messages; nil discards them.
	Logger *zap.Logger
	// MinFreeSpace is the free space (bytes) of the storage's file system below which writes
	// fail with ErrNoSpace instead of reaching Badger (see DefaultMinFreeSpace for why Badger
	// must not write into a full file system). Zero means DefaultMinFreeSpace; see
	// ValidateMinFreeSpace for the bounds.
	MinFreeSpace int64
	// OnSpace, if set, is called when writes stop for lack of space and when they resume. It
	// runs on the goroutine that noticed (a writer or the store's watcher), so it must not block
	// nor use the store.
	OnSpace func(SpaceStatus)
	// OnOpen, if set, is called from the store's watcher once a database whose opening was
	// deferred, because OpenBadger found the disk full, is open. It may use the store.
	OnOpen func()
}

// ErrTooBig is returned (wrapped) when one transaction would write more than the store takes at
// once; split the work into smaller transactions.
var ErrTooBig = errors.New("transaction too big")

// valueThreshold is the size from which a value is kept in the value log, not in the tree.
const valueThreshold = 64 << 10

// vlogFileSize is the size of one value-log file (a variable for tests).
var vlogFileSize int64 = 64 << 20

// Badger is the Store on an embedded Badger database.
type Badger struct {
	mu     sync.RWMutex // held for reading by every operation, for writing by Close
	db     *badger.DB   // nil while the opening is deferred for lack of space (see OpenBadger)
	closed bool
	dir    string
	log    *zap.Logger

	gate      *spaceGate    // refuses writes while the disk is short of space
	onOpen    func()        // BadgerOptions.OnOpen
	stopWatch chan struct{} // closed by Close to stop the space watcher
	watchDone chan struct{}
	gcRunning bool // gcLoop was started; set before the watcher exits, read by Close after
	// syncer makes Update's commits durable when syncWrites is set.
	syncer     *fileSyncer
	syncWrites bool

	stopOnce sync.Once
	stopGC   chan struct{}
	gcDone   chan struct{}

	janMu   sync.Mutex
	jan     *janitor
	closing bool

	// lw keeps, per destination, whether its due index may hold entries and where its scans
	// start.
	lw *lowWater
	// counts holds the number of jobs in each state as of the last commit (see badgercounts.go).
	counts countBook

	gcMu sync.Mutex
	// CollectGarbage compacts the tree when the value log exceeds deepGCFloor (its size after
	// the last compaction) by deepGCStep.
	deepGCFloor, deepGCStep int64
}

var _ Store = (*Badger)(nil)

// OpenBadger opens (creating if needed) the Badger database in dir. Badger allows one open per
// directory; a second open, in this process or another, fails with an error that says so.
//
// When dir's file system has less free space than the reserve (BadgerOptions.MinFreeSpace),
// OpenBadger does not open the database: it returns a store whose operations fail with
// ErrNoSpace, and a watcher opens the database as soon as space returns (then calls
// BadgerOptions.OnOpen). Badger's Open writes little itself (about 25 KiB, measured), but it
// replays a memtable log left by a crash and flushes it to a table file of up to 16 MiB right
// after, through a memory map: on a full file system that is SIGBUS, and the process dies
// again on every start. Deferring is what lets the process start at all.
func OpenBadger(dir string, opts BadgerOptions) (*Badger, error) {
	if err := ValidateMinFreeSpace(opts.MinFreeSpace); err != nil {
		return nil, fmt.Errorf("opening faxhook storage at %s: min_free_space: %w", dir, err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("opening faxhook storage at %s: creating the directory: %w", dir, err)
	}
	log := opts.Logger
	if log == nil {
		log = zap.NewNop()
	}
	b := &Badger{dir: dir, log: log, syncer: newFileSyncer(dir), syncWrites: opts.SyncWrites, stopGC: make(chan struct{}), gcDone: make(chan struct{}),
		lw: newLowWater(), deepGCFloor: 2 * vlogFileSize, deepGCStep: 2 * vlogFileSize,
		gate: newSpaceGate(dir, opts.MinFreeSpace, opts.OnSpace), onOpen: opts.OnOpen, stopWatch: make(chan struct{}), watchDone: make(chan struct{})}
	st, err := b.gate.check()
	if err != nil {
		return nil, fmt.Errorf("opening faxhook storage at %s: %w", dir, err)
	}
	if st.Full {
		log.Warn("faxhook storage is short of free space; opening it once space returns",
			zap.String("storage", dir), zap.Int64("free_bytes", st.Free), zap.Int64("min_free_space", st.Reserve))
	} else if err := b.openDB(opts); err != nil {
		return nil, err
	}
	go b.watchSpace(opts)
	return b, nil
}

// openDB opens the Badger database and starts its garbage collector. The caller holds b.mu for
// writing, or has not shared b yet.
func (b *Badger) openDB(opts BadgerOptions) error {
	dir := b.dir
	// Without a logger Badger gets none rather than one that discards: it then skips its
	// messages, among them three debug lines per write batch, instead of formatting them.
	var logger badger.Logger
	if opts.Logger != nil {
		logger = zapBadgerLogger{opts.Logger.Sugar()}
	}
	bo := badger.DefaultOptions(dir).
		WithSyncWrites(false). // Update syncs itself when asked to: see fileSyncer
		WithLogger(logger).
		WithMemTableSize(16 << 20).
		WithNumMemtables(2).
		WithBlockCacheSize(16 << 20).
		WithIndexCacheSize(16 << 20).
		WithValueLogFileSize(vlogFileSize).
		// Values from 64 KiB up (a fax object of some hundred recipients, a fetched PDF) go to
		// the value log, where a transaction counts each as a pointer against its size limit
		// (15% of a memtable, 2.4 MiB): with Badger's default of 1 MiB, a fax_completed of a
		// 700 KB fax object to three URLs, with its tracked record, could never be committed.
		WithValueThreshold(valueThreshold).
		WithNumCompactors(2).
		WithMetricsEnabled(false)
	db, err := badger.Open(bo)
	if err != nil {
		if strings.Contains(err.Error(), "Cannot acquire directory lock") {
			return fmt.Errorf("opening faxhook storage at %s: it is locked by another process "+
				"(a running Caddy? use `caddy reload` to change its config, or give this instance its own storage directory): %w", dir, err)
		}
		return fmt.Errorf("opening faxhook storage at %s: %w", dir, err)
	}
	b.db = db
	if err := b.prepare(); err != nil {
		db.Close()
		b.db = nil
		return fmt.Errorf("opening faxhook storage at %s: %w", dir, err)
	}
	b.gcRunning = true
	go b.gcLoop(10 * time.Minute)
	return nil
}

// watchSpace checks the free space every spaceWatchInterval until Close, so that the gate
// reopens while nothing writes, and opens a database whose opening OpenBadger deferred.
func (b *Badger) watchSpace(opts BadgerOptions) {
	defer close(b.watchDone)
	t := time.NewTicker(spaceWatchInterval)
	defer t.Stop()
	var lastErr string
	for {
		select {
		case <-b.stopWatch:
			return
		case <-t.C:
		}
		st, err := b.gate.check()
		if err != nil || st.Full {
			continue
		}
		b.mu.Lock()
		deferred := b.db == nil && !b.closed
		if deferred {
			err = b.openDB(opts)
		}
		b.mu.Unlock()
		switch {
		case !deferred:
		case err != nil:
			if err.Error() != lastErr { // retried every tick: log each new reason once
				b.log.Error("opening faxhook storage now that it has space again", zap.Error(err))
				lastErr = err.Error()
			}
		default:
			b.log.Info("opened faxhook storage: it has space again", zap.String("storage", b.dir))
			if b.onOpen != nil {
				b.onOpen()
			}
		}
	}
}

// Opened reports whether the database is open: false while OpenBadger's opening waits for space.
func (b *Badger) Opened() bool {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.db != nil
}

// Space returns the state of the free-space gate as of its last check.
func (b *Badger) Space() SpaceStatus { return b.gate.status() }

// readable returns nil when the database can be read: ErrClosed after Close, an error wrapping
// ErrNoSpace while OpenBadger's opening waits for space. The caller holds b.mu.
func (b *Badger) readable() error {
	switch {
	case b.closed:
		return ErrClosed
	case b.db == nil:
		return fmt.Errorf("%w: the database in %s opens once %d bytes are free", ErrNoSpace, b.dir, b.gate.reserve)
	}
	return nil
}

// writable is readable, and also an error wrapping ErrNoSpace while the free-space gate is
// closed. The caller holds b.mu.
func (b *Badger) writable() error {
	if err := b.readable(); err != nil {
		return err
	}
	return b.gate.allow()
}

// prepare checks the layout's version, writing it into a new store, and loads what the store
// keeps in memory: the destinations with pending jobs and the job counts.
func (b *Badger) prepare() error {
	err := b.db.Update(func(txn *badger.Txn) error {
		item, err := txn.Get([]byte(keyFormat))
		switch {
		case err == nil:
			v, err := item.ValueCopy(nil)
			if err != nil {
				return fmt.Errorf("reading the format version: %w", err)
			}
			if string(v) != formatVersion {
				return fmt.Errorf("the storage has format %q, this build reads format %s: it was written by another build of faxhook", v, formatVersion)
			}
			return nil
		case !errors.Is(err, badger.ErrKeyNotFound):
			return fmt.Errorf("reading the format version: %w", err)
		}
		opts := badger.DefaultIteratorOptions
		opts.PrefetchValues = false
		opts.Prefix = []byte(prefixJob)
		it := txn.NewIterator(opts)
		it.Rewind()
		hasJobs := it.Valid()
		it.Close()
		if hasJobs {
			return errors.New("the storage holds jobs in a layout without a format version, written by a development build of faxhook; " +
				"let that build deliver them, or remove the directory")
		}
		if err := txn.Set([]byte(keyFormat), []byte(formatVersion)); err != nil {
			return err
		}
		return txn.Set([]byte(keyCounts), (&counts{}).encode())
	})
	if err != nil {
		return err
	}
	return b.db.View(func(txn *badger.Txn) error {
		if err := b.lw.load(txn); err != nil {
			return fmt.Errorf("reading the due index: %w", err)
		}
		if err := b.counts.load(txn); err != nil {
			return fmt.Errorf("reading the job counts: %w", err)
		}
		return nil
	})
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
			_ = b.valueLogGC() // best effort; the next tick tries again
		}
	}
}

// Close stops the janitor and the garbage collector and closes the database. Operations after
// Close fail with ErrClosed; Close waits for those under way.
func (b *Badger) Close() error {
	// The background loops take b.mu for reading: stop them before taking it for writing.
	b.janMu.Lock()
	b.closing = true
	j := b.jan
	b.jan = nil
	b.janMu.Unlock()
	if j != nil {
		j.halt()
	}
	b.stopOnce.Do(func() { close(b.stopGC); close(b.stopWatch) })
	<-b.watchDone // from here on nothing opens the database
	if b.gcRunning {
		<-b.gcDone
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil
	}
	b.closed = true
	b.syncer.close()
	if b.db == nil {
		return nil // never opened: the disk was full
	}
	// Badger's Close flushes the memtable to a new table file and retries forever when it cannot
	// create one: with the directory removed underneath it, Close would never return (and a
	// Caddy reload or stop with it). Give it a directory to write to, then remove that again.
	if _, err := os.Stat(b.dir); errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(b.dir, 0o700); err != nil {
			return fmt.Errorf("closing faxhook storage at %s, which was removed while open: recreating it for the last flush: %w", b.dir, err)
		}
		b.db.Close() // errors expected: the files it had open are gone
		if err := os.RemoveAll(b.dir); err != nil {
			return fmt.Errorf("closing faxhook storage at %s, which was removed while open: %w", b.dir, err)
		}
		return fmt.Errorf("closing faxhook storage at %s: the directory was removed while open; what it held is lost", b.dir)
	}
	if err := b.db.Close(); err != nil {
		return fmt.Errorf("closing faxhook storage at %s: %w", b.dir, err)
	}
	return nil
}

// Update runs fn in a read-write transaction, retrying on conflict. With SyncWrites it returns
// once the commit is on disk.
func (b *Badger) Update(fn func(Tx) error) error { return b.update(fn, b.syncWrites) }

// UpdateLazy runs fn in a read-write transaction, retrying on conflict, and returns once the
// commit is in the database, never waiting for the disk: a process crash keeps the commit, a
// power loss may undo it (and what was committed after it). An Update with SyncWrites that
// follows makes it durable too.
func (b *Badger) UpdateLazy(fn func(Tx) error) error { return b.update(fn, false) }

func (b *Badger) update(fn func(Tx) error, durable bool) error {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if err := b.writable(); err != nil {
		return err
	}
	var err error
	blocked := 0
	for try := 0; try < 10; try++ {
		t := &badgerTx{b: b, update: true}
		b.lw.begin(t)
		err = b.attempt(t, fn)
		b.lw.end(t, err == nil, t.firstSeen)
		if err == nil {
			if durable {
				if err := b.syncer.sync(); err != nil {
					return fmt.Errorf("committed, but not synced to disk: %w", err)
				}
			}
			return nil
		}
		if errors.Is(err, badger.ErrTxnTooBig) {
			return fmt.Errorf("%w: %w", ErrTooBig, err)
		}
		if errors.Is(err, badger.ErrBlockedWrites) {
			// CollectGarbage is flushing the memtables; that takes a moment.
			if blocked++; blocked < 600 {
				try--
				time.Sleep(50 * time.Millisecond)
				continue
			}
		}
		if !errors.Is(err, badger.ErrConflict) {
			return err
		}
	}
	return fmt.Errorf("committing after 10 conflicts: %w", err)
}

// attempt runs fn in a new read-write transaction t and commits it, with the job counts when it
// changed them.
func (b *Badger) attempt(t *badgerTx, fn func(Tx) error) error {
	t.txn = b.db.NewTransaction(true)
	defer t.txn.Discard()
	if err := fn(t); err != nil {
		return err
	}
	return b.counts.commit(t)
}

// View runs fn in a read-only transaction.
func (b *Badger) View(fn func(Tx) error) error {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if err := b.readable(); err != nil {
		return err
	}
	t := &badgerTx{b: b}
	b.lw.begin(t)
	err := b.db.View(func(txn *badger.Txn) error { t.txn = txn; return fn(t) })
	b.lw.end(t, err == nil, t.firstSeen)
	return err
}

type badgerTx struct {
	b      *Badger
	txn    *badger.Txn
	update bool

	// seen holds, for the jobs this transaction read or wrote, what a write needs to know of
	// the job as stored now: PutJob and PutJobHead need not read and decode it again.
	seen map[string]seenJob
	// chains caches the chain records this transaction read or wrote.
	chains map[string]chainRec
	// firstSeen holds, per destination whose due index was read from its low-water bound, the
	// key suffix of the first entry found (noEntry for none), for lowWater.end.
	firstSeen map[string]string
	// delta holds the transaction's changes of the per-state counts.
	delta counts
}

// saw records the key suffix of the first entry a scan of dest's due index found from its
// bound.
func (t *badgerTx) saw(dest string, at string) {
	if t.firstSeen == nil {
		t.firstSeen = map[string]string{}
	}
	if v, ok := t.firstSeen[dest]; !ok || at < v {
		t.firstSeen[dest] = at
	}
}

// seenJob is what a transaction knows of a job as stored: the fields its index entries depend
// on (ID, URL, Chain, State, DueAt, FinishedAt), its chain flags and its body record, which a
// head written back keeps when the body is inline.
type seenJob struct {
	Job
	body bodyRec
}

// remember records the indexed fields of j, and its body record, as stored.
func (t *badgerTx) remember(j *Job, body bodyRec) {
	if t.seen == nil {
		t.seen = map[string]seenJob{}
	}
	t.seen[j.ID] = seenJob{Job{ID: j.ID, URL: j.URL, Chain: j.Chain, State: j.State, DueAt: j.DueAt, FinishedAt: j.FinishedAt,
		chainFlags: j.chainFlags}, body}
}

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

func (t *badgerTx) State(key string) ([]byte, error) {
	v, err := t.get([]byte(prefixState + key))
	if err != nil && !errors.Is(err, ErrNotFound) {
		return nil, fmt.Errorf("reading state %q: %w", key, err)
	}
	return v, err
}

func (t *badgerTx) PutState(key string, value []byte) error {
	if err := t.txn.Set([]byte(prefixState+key), value); err != nil {
		return fmt.Errorf("storing state %q: %w", key, err)
	}
	return nil
}

func (t *badgerTx) DeleteState(key string) error {
	if err := t.txn.Delete([]byte(prefixState + key)); err != nil {
		return fmt.Errorf("deleting state %q: %w", key, err)
	}
	return nil
}

// destOf is the destination whose due index holds job j while it is pending.
func destOf(j *Job) string { return Destination(j.URL) }

// duePrefix is the prefix of dest's due index.
func duePrefix(dest string) []byte {
	return append(append(make([]byte, 0, len(prefixDue)+len(dest)+1), prefixDue...), append([]byte(dest), 0)...)
}

func dueKey(dest string, at time.Time, id string) []byte {
	k := duePrefix(dest)
	k = binary.BigEndian.AppendUint64(k, unixNanos(at))
	return append(k, id...)
}

// loadJob reads job id: its head and, with withBody, its body. It remembers the job as stored.
func (t *badgerTx) loadJob(id string, withBody bool) (*Job, error) {
	key := make([]byte, 0, len(prefixJob)+len(id))
	item, err := t.txn.Get(append(append(key, prefixJob...), id...))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("reading job %s: %w", id, err)
	}
	j := &Job{ID: id}
	var body bodyRec
	err = item.Value(func(v []byte) (err error) {
		if body, err = decodeHead(v, j); err != nil || !withBody || body.apart {
			return err
		}
		if err := decodeInline(v, body, j); err != nil {
			return fmt.Errorf("its body: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("decoding job %s: %w", id, err)
	}
	if withBody && body.apart {
		if err := t.loadBody(j); err != nil {
			return nil, err
		}
	}
	t.remember(j, body)
	return j, nil
}

// loadBody reads the body of j from its body record. A large record is copied once, and the
// file data decoded from it are cut from that copy.
func (t *badgerTx) loadBody(j *Job) error {
	item, err := t.txn.Get([]byte(prefixBody + j.ID))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return fmt.Errorf("reading the body of job %s: %w", j.ID, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("reading the body of job %s: %w", j.ID, err)
	}
	if err := item.Value(func(v []byte) error { return decodeBody(v, "", j) }); err != nil {
		return fmt.Errorf("decoding the body of job %s: %w", j.ID, err)
	}
	return nil
}

func (t *badgerTx) Job(id string) (*Job, error) { return t.loadJob(id, true) }

func (t *badgerTx) JobHead(id string) (*Job, error) { return t.loadJob(id, false) }

// stored returns what the transaction knows of job id as stored, reading its head if it knows
// nothing yet.
func (t *badgerTx) stored(id string) (*seenJob, error) {
	if s, ok := t.seen[id]; ok {
		return &s, nil
	}
	if _, err := t.JobHead(id); err != nil {
		return nil, err
	}
	s := t.seen[id]
	return &s, nil
}

func (t *badgerTx) Enqueue(job *Job) (bool, error) {
	if job.ID == "" {
		return false, errors.New("enqueueing a job without an ID")
	}
	if _, err := t.txn.Get([]byte(prefixJob + job.ID)); err == nil {
		return false, nil
	} else if !errors.Is(err, badger.ErrKeyNotFound) {
		return false, fmt.Errorf("enqueueing job %s: %w", job.ID, err)
	}
	job.State, job.FinishedAt, job.chainFlags = StatePending, time.Time{}, 0 // enterChain may make it wait
	if err := t.write(job, nil, true); err != nil {
		return false, fmt.Errorf("enqueueing job %s: %w", job.ID, err)
	}
	return true, nil
}

func (t *badgerTx) PutJob(job *Job) error {
	old, err := t.stored(job.ID)
	if errors.Is(err, ErrNotFound) {
		return fmt.Errorf("storing job %s: %w", job.ID, err)
	}
	if err != nil {
		return err
	}
	if err := t.write(job, old, true); err != nil {
		return fmt.Errorf("storing job %s: %w", job.ID, err)
	}
	return nil
}

// bodyIs reports whether the body record of job id holds body.
func (t *badgerTx) bodyIs(id string, body []byte) (bool, error) {
	item, err := t.txn.Get([]byte(prefixBody + id))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("reading the body of job %s: %w", id, err)
	}
	same := false
	err = item.Value(func(v []byte) error { same = bytes.Equal(v, body); return nil })
	if err != nil {
		return false, fmt.Errorf("reading the body of job %s: %w", id, err)
	}
	return same, nil
}

func (t *badgerTx) PutJobHead(job *Job) error {
	old, err := t.stored(job.ID)
	if err != nil {
		return fmt.Errorf("storing the state of job %s: %w", job.ID, err)
	}
	if err := t.write(job, old, false); err != nil {
		return fmt.Errorf("storing the state of job %s: %w", job.ID, err)
	}
	return nil
}

// chainRec is a chain record as stored (c/<chain>): chainRecV2, the 8-byte sequence number of
// the next waiting job, and the ID of the job that entered the chain last (its tail). Whether
// the tail is unfinished tells whether a job entering the chain waits. Finishing a job touches
// the chain only if a job waits behind it (chainWaiter), so a chain of one job at a time costs
// one record write per job.
type chainRec struct {
	exists bool
	next   uint64 // sequence number of the next waiting job
	tail   string // the job that entered last
}

// chainRecV2 is the first byte of a chain record.
const chainRecV2 = 0xC1

// Chain bookkeeping flags of a job (Job.chainFlags), stored in its head.
const (
	// chainLinked marks a job that entered its chain.
	chainLinked uint8 = 1 << iota
	// chainWaiter marks a job that a later job of its chain waits behind: finishing it makes
	// the first waiting job pending.
	chainWaiter
)

// chain reads the record of chain name.
func (t *badgerTx) chain(name string) (chainRec, error) {
	if c, ok := t.chains[name]; ok {
		return c, nil
	}
	v, err := t.get([]byte(prefixChain + name))
	var c chainRec
	switch {
	case errors.Is(err, ErrNotFound):
	case err != nil:
		return c, fmt.Errorf("reading chain %q: %w", name, err)
	case len(v) >= 10 && v[0] == chainRecV2:
		c = chainRec{exists: true, next: binary.BigEndian.Uint64(v[1:9]), tail: string(v[9:])}
	default:
		return c, fmt.Errorf("reading chain %q: %w: bad chain record", name, errCorrupt)
	}
	t.cacheChain(name, c)
	return c, nil
}

func (t *badgerTx) cacheChain(name string, c chainRec) {
	if t.chains == nil {
		t.chains = map[string]chainRec{}
	}
	t.chains[name] = c
}

// putChain stores the record of chain name.
func (t *badgerTx) putChain(name string, c chainRec) error {
	c.exists = true
	t.cacheChain(name, c)
	v := make([]byte, 0, 9+len(c.tail))
	v = binary.BigEndian.AppendUint64(append(v, chainRecV2), c.next)
	return t.txn.Set([]byte(prefixChain+name), append(v, c.tail...))
}

func waitKey(chain string, seq uint64, id string) []byte {
	k := waitPrefix(chain)
	k = binary.BigEndian.AppendUint64(k, seq)
	return append(k, id...)
}

// idAfterSeq returns the job ID of a due or wait index key less its prefix: what follows the
// first NUL and the 8 bytes after it.
func idAfterSeq(k []byte) string {
	if i := bytes.IndexByte(k, 0); i >= 0 && len(k) >= i+9 {
		return string(k[i+9:])
	}
	return ""
}

// waitPrefix is the common prefix of the wait entries of one chain. A chain may hold any byte
// (faxhook's hold a NUL between fax id and URL), so NUL and the escape byte are escaped in it:
// the NUL after it then ends the chain, and no chain's prefix is another chain's.
func waitPrefix(chain string) []byte {
	k := []byte(prefixWait)
	for i := 0; i < len(chain); i++ {
		switch c := chain[i]; c {
		case 0, 1:
			k = append(k, 1, c+1)
		default:
			k = append(k, c)
		}
	}
	return append(k, 0)
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

// enterChain keeps the chain's bookkeeping when job enters it: enqueued (old nil), when it waits
// behind the chain's last job if that one is unfinished, or replayed after it had finished, when
// it is pending at once, as it always was.
func (t *badgerTx) enterChain(job *Job, old *seenJob) error {
	if job.Chain == "" || Finished(job.State) || old != nil && !Finished(old.State) {
		return nil
	}
	c, err := t.chain(job.Chain)
	if err != nil {
		return err
	}
	job.chainFlags = chainLinked
	tailOpen := false
	if c.exists && c.tail != job.ID {
		tail, err := t.stored(c.tail)
		switch {
		case errors.Is(err, ErrNotFound):
		case err != nil:
			return fmt.Errorf("loading the last job of chain %q: %w", job.Chain, err)
		default:
			tailOpen = !Finished(tail.State)
		}
	}
	switch {
	case old == nil && tailOpen:
		job.State = StateWaiting
		if err := t.txn.Set(waitKey(job.Chain, c.next, job.ID), nil); err != nil {
			return err
		}
		c.next++
		if err := t.markWaiter(c.tail); err != nil {
			return fmt.Errorf("chaining job %s: %w", job.ID, err)
		}
	case tailOpen:
		return nil // replayed while the chain's last job is unfinished: that one stays last
	}
	c.tail = job.ID
	return t.putChain(job.Chain, c)
}

// markWaiter flags job id as having a job of its chain wait behind it.
func (t *badgerTx) markWaiter(id string) error {
	j, err := t.JobHead(id)
	if err != nil {
		return err
	}
	if j.chainFlags&chainWaiter != 0 {
		return nil
	}
	old := t.seen[id]
	j.chainFlags |= chainWaiter
	return t.writeIndexes(j, &old, false)
}

// leaveChain makes the first job waiting behind job pending when job finished.
func (t *badgerTx) leaveChain(job *Job, old *seenJob) error {
	if job.Chain == "" || !Finished(job.State) || old == nil || Finished(old.State) || job.chainFlags&chainWaiter == 0 {
		return nil
	}
	return t.promoteWaiter(job)
}

// promoteWaiter makes the first job waiting in job's chain pending, due when job finished. Wait
// entries of jobs that no longer wait (replayed meanwhile) are dropped on the way.
func (t *badgerTx) promoteWaiter(job *Job) error {
	opts := badger.DefaultIteratorOptions
	opts.PrefetchValues = false
	opts.Prefix = waitPrefix(job.Chain)
	for {
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
		if err := t.txn.Delete(key); err != nil {
			return err
		}
		nextID := string(key[len(opts.Prefix)+8:])
		nextJob, err := t.JobHead(nextID)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return fmt.Errorf("loading the next job of chain %q: %w", job.Chain, err)
		}
		if nextJob.State != StateWaiting {
			continue
		}
		prev := t.seen[nextID]
		nextJob.State, nextJob.DueAt = StatePending, job.DueAt
		return t.writeIndexes(nextJob, &prev, false)
	}
}

// write stores job's head, and with withBody its body (else the body stays as stored), moves its
// index entries from those of old (nil for a new job) and keeps its chain's bookkeeping.
func (t *badgerTx) write(job *Job, old *seenJob, withBody bool) error {
	switch job.State {
	case StateLeased:
		return errors.New("leases are held by the dispatcher, not stored")
	case StateWaiting:
		if old == nil || old.State != StateWaiting {
			return errors.New("only the store makes a job wait, behind its chain")
		}
	case StatePending, StateDelivered, StateDead:
	default:
		return fmt.Errorf("unknown state %q", job.State)
	}
	if old != nil {
		if job.Chain != old.Chain {
			return fmt.Errorf("its chain is %q, it cannot change", old.Chain)
		}
		// The flags as stored win: the caller's copy may predate a job chained behind it, or
		// be built anew. Entering the chain again (a replay) sets them afresh.
		job.chainFlags |= old.chainFlags
	}
	if err := t.enterChain(job, old); err != nil {
		return err
	}
	if err := t.writeIndexes(job, old, withBody); err != nil {
		return err
	}
	return t.leaveChain(job, old)
}

// writeIndexes stores job's head, and with withBody its body (else the body stays as stored),
// moves its index entries from those of old and books the change of state in the counts.
func (t *badgerTx) writeIndexes(job *Job, old *seenJob, withBody bool) error {
	if old != nil {
		var key []byte
		switch old.State {
		case StatePending:
			key = dueKey(destOf(&old.Job), old.DueAt, old.ID)
		case StateDelivered, StateDead:
			key = finKey(old.State, old.FinishedAt, old.ID)
		}
		if key != nil {
			if err := t.txn.Delete(key); err != nil {
				return err
			}
		}
		t.delta.add(old.State, -1)
	}
	var head []byte
	var body bodyRec
	if withBody {
		var apart []byte
		head, body, apart = encodeJob(job)
		if err := t.writeBody(job.ID, old, apart); err != nil {
			return err
		}
	} else {
		body = old.body
		head = encodeHead(job, body)
	}
	if err := t.txn.Set([]byte(prefixJob+job.ID), head); err != nil {
		return err
	}
	t.remember(job, body)
	t.delta.add(job.State, 1)
	switch job.State {
	case StatePending:
		dest := destOf(job)
		k := dueKey(dest, job.DueAt, job.ID)
		t.b.lw.wrote(t, dest, string(k[len(prefixDue)+len(dest)+1:]))
		return t.txn.Set(k, nil)
	case StateDelivered, StateDead:
		return t.txn.Set(finKey(job.State, job.FinishedAt, job.ID), nil)
	}
	return nil
}

// writeBody keeps the body record of job id, whose body was stored as old says (nil: a new job),
// in step with its new body: apart holds the new body record, nil when the body is inline in
// the head. An unchanged record is not written again.
func (t *badgerTx) writeBody(id string, old *seenJob, apart []byte) error {
	wasApart := old != nil && old.body.apart
	switch {
	case apart == nil && !wasApart:
		return nil
	case apart == nil:
		return t.txn.Delete([]byte(prefixBody + id))
	case wasApart:
		same, err := t.bodyIs(id, apart)
		if err != nil || same {
			return err
		}
	}
	return t.txn.Set([]byte(prefixBody+id), apart)
}

func (t *badgerTx) DeleteJob(id string) error {
	j, err := t.stored(id)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if !Finished(j.State) {
		return fmt.Errorf("deleting job %s: it is %s, not finished", id, j.State)
	}
	if j.Chain != "" {
		c, err := t.chain(j.Chain)
		if err != nil {
			return err
		}
		if c.exists && c.tail == id { // the chain has no unfinished job left
			t.cacheChain(j.Chain, chainRec{})
			if err := t.txn.Delete([]byte(prefixChain + j.Chain)); err != nil {
				return fmt.Errorf("deleting job %s: %w", id, err)
			}
		}
	}
	keys := [][]byte{finKey(j.State, j.FinishedAt, j.ID), []byte(prefixJob + id)}
	if j.body.apart {
		keys = append(keys, []byte(prefixBody+id))
	}
	for _, k := range keys {
		if err := t.txn.Delete(k); err != nil {
			return fmt.Errorf("deleting job %s: %w", id, err)
		}
	}
	t.delta.add(j.State, -1)
	delete(t.seen, id)
	return nil
}

// dueIterator opens an iterator over dest's due index, positioned at the index's low-water
// bound; values are not read. The caller closes it.
func (t *badgerTx) dueIterator(dest string) (*badger.Iterator, []byte) {
	prefix := duePrefix(dest)
	opts := badger.DefaultIteratorOptions
	opts.PrefetchValues = false
	opts.Prefix = prefix
	it := t.txn.NewIterator(opts)
	it.Seek(seekKey(prefix, t.b.lw.from(dest)))
	return it, prefix
}

// Destinations answers the destinations whose low-water bound lies after now from the bounds,
// in memory, without a read: the dispatcher asks every round, and destinations whose jobs all
// wait for a retry hours away then cost a comparison each. The others cost one seek each.
func (t *badgerTx) Destinations(now time.Time, fn func(dest string, oldest time.Time) bool) (time.Time, error) {
	end := unixNanos(now)
	cands, later := t.b.lw.candidates(end)
	var next time.Time
	if later != 0 {
		next = time.Unix(0, int64(later))
	}
	if len(cands) == 0 {
		return next, nil
	}
	opts := badger.DefaultIteratorOptions
	opts.PrefetchValues = false
	opts.Prefix = []byte(prefixDue)
	it := t.txn.NewIterator(opts)
	defer it.Close()
	for _, c := range cands {
		prefix := duePrefix(c.dest)
		it.Seek(seekKey(prefix, c.bound))
		if !it.ValidForPrefix(prefix) {
			t.saw(c.dest, noEntry)
			continue
		}
		k := it.Item().Key()[len(prefix):]
		t.saw(c.dest, string(k))
		at := binary.BigEndian.Uint64(k)
		if at > end {
			if next.IsZero() || at < uint64(next.UnixNano()) {
				next = time.Unix(0, int64(at))
			}
			continue
		}
		if !fn(c.dest, time.Unix(0, int64(at))) {
			return time.Time{}, nil
		}
	}
	return next, nil
}

func (t *badgerTx) PendingJobs(dest string, fn func(id string, dueAt time.Time) bool) error {
	it, prefix := t.dueIterator(dest)
	defer it.Close()
	if !it.Valid() {
		t.saw(dest, noEntry)
		return nil
	}
	t.saw(dest, string(it.Item().Key()[len(prefix):]))
	for ; it.Valid(); it.Next() {
		k := it.Item().Key()[len(prefix):]
		if len(k) < 8 {
			return fmt.Errorf("reading the due index of %s: %w", dest, errCorrupt)
		}
		if !fn(string(k[8:]), time.Unix(0, int64(binary.BigEndian.Uint64(k)))) {
			return nil
		}
	}
	return nil
}

// dueRef is a due-index entry: a pending job's due time and ID.
type dueRef struct {
	at time.Time
	id string
}

func (t *badgerTx) Due(now time.Time, limit int) ([]*Job, error) {
	if limit <= 0 {
		return nil, nil
	}
	var refs []dueRef
	var dests []string
	_, err := t.Destinations(now, func(dest string, _ time.Time) bool {
		dests = append(dests, dest)
		return true
	})
	if err != nil {
		return nil, err
	}
	// Each destination gives at most limit jobs.
	for _, dest := range dests {
		n := 0
		err := t.PendingJobs(dest, func(id string, at time.Time) bool {
			if at.After(now) {
				return false
			}
			refs = append(refs, dueRef{at: at, id: id})
			n++
			return n < limit
		})
		if err != nil {
			return nil, err
		}
	}
	slices.SortFunc(refs, func(a, b dueRef) int {
		if c := a.at.Compare(b.at); c != 0 {
			return c
		}
		return strings.Compare(a.id, b.id)
	})
	refs = refs[:min(len(refs), limit)]
	jobs := make([]*Job, 0, len(refs))
	for _, r := range refs {
		j, err := t.Job(r.id)
		if err != nil {
			return nil, fmt.Errorf("loading due job %s: %w", r.id, err)
		}
		jobs = append(jobs, j)
	}
	return jobs, nil
}

func (t *badgerTx) NextDue() (time.Time, bool, error) {
	var best time.Time
	found := false
	// With the latest time as now, every destination's earliest job is due.
	_, err := t.Destinations(time.Unix(0, math.MaxInt64), func(_ string, next time.Time) bool {
		if !found || next.Before(best) {
			best, found = next, true
		}
		return true
	})
	return best, found, err
}

func (t *badgerTx) Jobs(fn func(*Job) bool) error { return t.jobs(true, fn) }

func (t *badgerTx) JobHeads(fn func(*Job) bool) error { return t.jobs(false, fn) }

// jobs walks the job records in ID order, with or without their bodies.
func (t *badgerTx) jobs(withBody bool, fn func(*Job) bool) error {
	opts := badger.DefaultIteratorOptions
	opts.Prefix = []byte(prefixJob)
	it := t.txn.NewIterator(opts)
	defer it.Close()
	for it.Rewind(); it.Valid(); it.Next() {
		j := &Job{ID: string(it.Item().Key()[len(prefixJob):])}
		var body bodyRec
		err := it.Item().Value(func(v []byte) (err error) {
			if body, err = decodeHead(v, j); err != nil || !withBody || body.apart {
				return err
			}
			return decodeInline(v, body, j)
		})
		if err != nil {
			return fmt.Errorf("decoding job %s: %w", j.ID, err)
		}
		if withBody && body.apart {
			if err := t.loadBody(j); err != nil {
				return err
			}
		}
		if !fn(j) {
			return nil
		}
	}
	return nil
}

func (t *badgerTx) Finished(state string, since time.Time, fn func(*Job) bool) error {
	return t.finished(state, since, true, fn)
}

func (t *badgerTx) FinishedHeads(state string, since time.Time, fn func(*Job) bool) error {
	return t.finished(state, since, false, fn)
}

// finished walks the jobs in a final state from since on, with or without their bodies.
func (t *badgerTx) finished(state string, since time.Time, withBody bool, fn func(*Job) bool) error {
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
		load := t.JobHead
		if withBody {
			load = t.Job
		}
		j, err := load(id)
		if err != nil {
			return fmt.Errorf("loading finished job %s: %w", id, err)
		}
		if !fn(j) {
			return nil
		}
	}
	return nil
}

// List pages through one index: the job records (all jobs, by ID), the due indexes (pending:
// by destination, then due time), the wait entries (waiting: by chain, then enqueue order) or
// the finished index of a final state (by finish time). The cursor is the last listed entry's
// key, base64-encoded.
func (t *badgerTx) List(q ListQuery) (Page, error) {
	limit := q.Limit
	if limit <= 0 {
		limit = DefaultPageSize
	}
	var prefix, from []byte
	idOf := func(k []byte) string { return string(k) } // k: the key after prefix
	switch q.State {
	case "":
		prefix = []byte(prefixJob)
	case StatePending:
		prefix = []byte(prefixDue)
		idOf = idAfterSeq // <destination>\x00<8-byte due time><id>
	case StateWaiting:
		prefix = []byte(prefixWait)
		idOf = idAfterSeq // <escaped chain>\x00<8-byte seq><id>
	case StateDelivered, StateDead:
		prefix = []byte(prefixFin + q.State + "/")
		from = finKey(q.State, q.Since, "")
		idOf = func(k []byte) string {
			if len(k) >= 8 {
				return string(k[8:])
			}
			return ""
		}
	default:
		return Page{}, fmt.Errorf("listing jobs: unknown state %q", q.State)
	}
	after := []byte(nil)
	if q.After != "" {
		k, err := base64.RawURLEncoding.DecodeString(q.After)
		if err != nil {
			return Page{}, fmt.Errorf("listing jobs: %w: cursor %q", ErrBadCursor, q.After)
		}
		after = append(slices.Clone(prefix), k...)
		if from == nil || bytes.Compare(after, from) >= 0 {
			from = append(after, 0) // the first key after the cursor's
		}
	}
	opts := badger.DefaultIteratorOptions
	opts.PrefetchValues = false
	opts.Prefix = prefix
	it := t.txn.NewIterator(opts)
	defer it.Close()
	if from == nil {
		it.Rewind()
	} else {
		it.Seek(from)
	}
	var page Page
	var last []byte
	for ; it.Valid(); it.Next() {
		k := it.Item().Key()[len(prefix):]
		if len(page.Jobs) == limit {
			page.Next = base64.RawURLEncoding.EncodeToString(last)
			break
		}
		id := idOf(k)
		j, err := t.JobHead(id)
		if err != nil {
			return Page{}, fmt.Errorf("listing jobs: loading job %q: %w", id, err)
		}
		if q.State == StateWaiting && j.State != StateWaiting {
			continue // a stale wait entry of a job replayed meanwhile: promoteWaiter drops it
		}
		page.Jobs = append(page.Jobs, j)
		last = slices.Clone(k)
	}
	return page, nil
}

func (t *badgerTx) States(prefix string, fn func(key string, value []byte) bool) error {
	opts := badger.DefaultIteratorOptions
	opts.Prefix = []byte(prefixState + prefix)
	it := t.txn.NewIterator(opts)
	defer it.Close()
	for it.Rewind(); it.Valid(); it.Next() {
		v, err := it.Item().ValueCopy(nil)
		if err != nil {
			return fmt.Errorf("reading state %q: %w", it.Item().Key()[len(prefixState):], err)
		}
		if !fn(string(it.Item().Key()[len(prefixState):]), v) {
			return nil
		}
	}
	return nil
}

// zapBadgerLogger routes Badger's messages to zap; its chatty info level goes to debug.
type zapBadgerLogger struct{ s *zap.SugaredLogger }

func (z zapBadgerLogger) Errorf(f string, a ...any)   { z.s.Errorf(strings.TrimSpace(f), a...) }
func (z zapBadgerLogger) Warningf(f string, a ...any) { z.s.Warnf(strings.TrimSpace(f), a...) }
func (z zapBadgerLogger) Infof(f string, a ...any)    { z.s.Debugf(strings.TrimSpace(f), a...) }
func (z zapBadgerLogger) Debugf(f string, a ...any)   { z.s.Debugf(strings.TrimSpace(f), a...) }
