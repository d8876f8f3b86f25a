package queue

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"
	"go.uber.org/zap"
)

// Key prefixes of the Badger layout.
const (
	prefixState = "s/" // s/<key> → state record
	prefixJob   = "j/" // j/<id> → job head (see encodeHead; whole job as JSON in older stores)
	prefixBody  = "b/" // b/<id> → job body: its Payload (see encodeBody)
	prefixDue   = "q/" // q/<8-byte big-endian unix nanos><id> → Destination(URL) for pending jobs
	prefixPark  = "p/" // p/<destination>\x00<8-byte unix nanos><id> → "" for pending jobs set aside
	prefixLease = "l/" // l/<id> → "" for leased jobs
	prefixWait  = "w/" // w/<chain>\x00<8-byte seq><id> → "" for waiting jobs
	prefixChain = "c/" // c/<chain> → tail record or, as stored before, count record: see chainRec
	prefixFin   = "f/" // f/<state>/<8-byte unix nanos of FinishedAt><id> → "" for finished jobs

	keyFlushMarker = "x/flush" // written and dropped at once to make Badger flush its memtables
)

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

// Bounds on the work of one Tx.ScanDue.
const (
	// parkAfter is how many due jobs of one busy destination one read-write scan passes over
	// before it sets that destination's next ones aside. Setting aside costs two writes now and
	// one more when the job is leased; passing over costs one step of every later scan. When
	// destinations take turns in the due index, as they do when none hangs, scans pass over a few
	// entries of each and set aside none; a destination that holds a long run of due jobs gets
	// them set aside. A job is also set aside, whatever the count, when its destination had such
	// a run set aside (see Badger.backlogged) or when passesBeforeParking scans passed over it
	// (its destination stays busy; left in place, it would hold back the low-water bound, and
	// every later scan would walk the deletion markers behind it).
	parkAfter = 64
	// parkBudget is how many due jobs of busy destinations one read-write scan sets aside.
	parkBudget = 2048
	// skipBudget is how many due jobs of busy destinations one read-only scan passes over.
	skipBudget = 16384
)

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

	parkMu sync.Mutex
	// parked holds every destination that may have jobs set aside (p/ keys), with a generation
	// that each new set-aside bumps. It is a superset: a destination leaves it only after a
	// committed scan found none of its jobs set aside and no set-aside happened since.
	parked map[string]uint64
	// backlogged holds the destinations of parked that had a long run of due jobs set aside (a
	// scan passed over more than parkAfter of them): later scans set their due jobs aside at
	// once, so that the jobs left in the due index before the run follow it into the set-aside
	// list, which is offered first, instead of waiting behind younger jobs. The jobs of a
	// destination that is only briefly at its limit are set aside one by one, each after
	// passesBeforeParking scans passed over it, if at all.
	backlogged map[string]bool
	// passed holds the due-index entries (key suffix: due time and ID) that a read-write scan
	// passed over, busy destination, and left in place; a scan that passes one again sets it
	// aside, so that an entry whose destination stays busy does not hold the due index's low-water
	// bound (and with it every scan's start) back. At most passedMemoMax entries.
	passed map[string]int

	janMu   sync.Mutex
	jan     *janitor
	closing bool

	lw *lowWater // where scans of the due index and set-aside lists start

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
		parked: map[string]uint64{}, backlogged: map[string]bool{}, passed: map[string]int{}, lw: newLowWater(), deepGCFloor: 2 * vlogFileSize, deepGCStep: 2 * vlogFileSize,
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
	bo := badger.DefaultOptions(dir).
		WithSyncWrites(false). // Update syncs itself when asked to: see fileSyncer
		WithLogger(zapBadgerLogger{opts.Logger}).
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
	if err := b.loadParked(); err != nil {
		db.Close()
		b.db = nil
		return fmt.Errorf("opening faxhook storage at %s: reading set-aside jobs: %w", dir, err)
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

// loadParked fills b.parked with the destinations that have jobs set aside, one seek per
// destination.
func (b *Badger) loadParked() error {
	return b.db.View(func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.PrefetchValues = false
		opts.Prefix = []byte(prefixPark)
		it := txn.NewIterator(opts)
		defer it.Close()
		for it.Rewind(); it.Valid(); {
			k := it.Item().Key()[len(prefixPark):]
			i := bytes.IndexByte(k, 0)
			if i < 0 {
				it.Next()
				continue
			}
			dest := string(k[:i])
			b.parked[dest] = 1
			b.backlogged[dest] = true // why is not stored: set the rest aside too
			it.Seek(append([]byte(prefixPark+dest), 1))
		}
		return nil
	})
}

// parkedDests returns a copy of the destinations that may have jobs set aside.
func (b *Badger) parkedDests() map[string]uint64 {
	b.parkMu.Lock()
	defer b.parkMu.Unlock()
	if len(b.parked) == 0 {
		return nil
	}
	m := make(map[string]uint64, len(b.parked))
	for k, v := range b.parked {
		m[k] = v
	}
	return m
}

// mayBeParked reports whether dest may have jobs set aside.
func (b *Badger) mayBeParked(dest string) bool {
	b.parkMu.Lock()
	defer b.parkMu.Unlock()
	_, ok := b.parked[dest]
	return ok
}

// passesBeforeParking is how many read-write scans pass over a busy destination's due job
// before one sets it aside. A destination at its limit but answering frees a slot within
// milliseconds, and its job is taken a few scans later. In qbench's delivery case (b), where
// four fast destinations take turns at their limits, 8 had 550–1,350 of 3,000 jobs set aside
// (two more writes and a read each, and every later scan offering their set-aside lists); 32
// has 0–2.
const passesBeforeParking = 32

// passedMemoMax bounds Badger.passed; when full it starts over.
const passedMemoMax = 4096

// passedBefore reports whether read-write scans passed over the due-index entry with key suffix
// (busy destination) passesBeforeParking times, counting this one; if not, it counts this one.
func (b *Badger) passedBefore(suffix []byte) bool {
	b.parkMu.Lock()
	defer b.parkMu.Unlock()
	if n, ok := b.passed[string(suffix)]; ok {
		if n+1 >= passesBeforeParking {
			delete(b.passed, string(suffix))
			return true
		}
		b.passed[string(suffix)] = n + 1
		return false
	}
	if len(b.passed) >= passedMemoMax {
		clear(b.passed)
	}
	b.passed[string(suffix)] = 1
	return false
}

// isBacklogged reports whether dest had a long run of due jobs set aside (see
// Badger.backlogged).
func (b *Badger) isBacklogged(dest string) bool {
	b.parkMu.Lock()
	defer b.parkMu.Unlock()
	return b.backlogged[dest]
}

// addParked records, before the transaction commits, that dest is getting jobs set aside,
// because of a long run of them if run is set.
func (b *Badger) addParked(dest string, run bool) {
	b.parkMu.Lock()
	defer b.parkMu.Unlock()
	b.parked[dest]++
	if run {
		b.backlogged[dest] = true
	}
}

// dropParked forgets dest once a committed scan found none of its jobs set aside, unless jobs
// were set aside since (gen changed).
func (b *Badger) dropParked(dest string, gen uint64) {
	b.parkMu.Lock()
	defer b.parkMu.Unlock()
	if b.parked[dest] == gen {
		delete(b.parked, dest)
		delete(b.backlogged, dest)
		b.lw.forget(dest)
	}
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
		err = b.db.Update(func(txn *badger.Txn) error { t.txn = txn; return fn(t) })
		b.lw.end(t, err == nil, t.firstSeen)
		if err == nil {
			for _, h := range t.committed {
				h()
			}
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
	b         *Badger
	txn       *badger.Txn
	update    bool
	committed []func() // run once the transaction committed

	// seen holds, for the jobs this transaction read or wrote, what a write needs to know of
	// the job as stored now: PutJob and PutJobHead need not read and decode it again.
	seen map[string]seenJob
	// chains caches the chain records this transaction read or wrote.
	chains map[string]chainRec
	// offered records, for the jobs ScanDue offered in this transaction, whether their entry was
	// a set-aside one (true) or in the due index (false).
	offered map[string]bool
	// firstSeen holds, per index scanned from its low-water bound, the key suffix of the first
	// entry found (noEntry for none), for lowWater.end.
	firstSeen map[string]string
}

// offer records where the entry of a job ScanDue offers is.
func (t *badgerTx) offer(id string, parked bool) {
	if t.offered == nil {
		t.offered = map[string]bool{}
	}
	t.offered[id] = parked
}

// saw records the key suffix of the first entry a scan of index idx found from its bound.
func (t *badgerTx) saw(idx string, at string) {
	if t.firstSeen == nil {
		t.firstSeen = map[string]string{}
	}
	if v, ok := t.firstSeen[idx]; !ok || at < v {
		t.firstSeen[idx] = at
	}
}

// indexOf names the low-water index of a due-index or set-aside prefix.
func indexOf(prefix []byte) string {
	if string(prefix) == prefixDue {
		return ""
	}
	return string(prefix[len(prefixPark) : len(prefix)-1])
}

// seenJob is what a transaction knows of a job as stored.
type seenJob struct {
	// Job holds the fields the index entries depend on: ID, URL, Chain, State, DueAt and
	// FinishedAt.
	Job
	// legacyBody is, while the job is stored in the JSON layout (one record holding the whole
	// job), its body encoded for a body record: its next write stores it. nil otherwise.
	legacyBody []byte
}

// remember records the indexed fields of j as stored and, for a job stored in the JSON layout,
// its encoded body.
func (t *badgerTx) remember(j *Job, legacyBody []byte) {
	if t.seen == nil {
		t.seen = map[string]seenJob{}
	}
	t.seen[j.ID] = seenJob{Job: Job{ID: j.ID, URL: j.URL, Chain: j.Chain, State: j.State, DueAt: j.DueAt, FinishedAt: j.FinishedAt,
		chainFlags: j.chainFlags}, legacyBody: legacyBody}
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

// parkKey is the key of a pending job set aside because its destination was busy.
func parkKey(dest string, at time.Time, id string) []byte {
	return parkKeyNanos(dest, unixNanos(at), id)
}

func parkKeyNanos(dest string, at uint64, id string) []byte {
	k := make([]byte, 0, len(prefixPark)+len(dest)+1+8+len(id))
	k = append(append(append(k, prefixPark...), dest...), 0)
	k = binary.BigEndian.AppendUint64(k, at)
	return append(k, id...)
}

// decodeJobRecord decodes a head record, or a whole job stored as JSON (legacy true), into j.
func decodeJobRecord(v []byte, j *Job) (legacy bool, err error) {
	if len(v) > 0 && v[0] == '{' {
		id := j.ID
		err := json.Unmarshal(v, j)
		j.ID = id // the key is authoritative
		return true, err
	}
	return false, decodeHead(v, j)
}

// loadHead reads the head of job id. When the job is stored in the JSON layout (legacy), j holds
// the whole job, body included.
func (t *badgerTx) loadHead(id string) (j *Job, legacy bool, err error) {
	item, err := t.txn.Get([]byte(prefixJob + id))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, false, ErrNotFound
	}
	if err != nil {
		return nil, false, fmt.Errorf("reading job %s: %w", id, err)
	}
	j = &Job{ID: id}
	err = item.Value(func(v []byte) error {
		legacy, err = decodeJobRecord(v, j)
		return err
	})
	if err != nil {
		return nil, false, fmt.Errorf("decoding job %s: %w", id, err)
	}
	return j, legacy, nil
}

// loadBody reads the body of j from its body record.
func (t *badgerTx) loadBody(j *Job) error {
	item, err := t.txn.Get([]byte(prefixBody + j.ID))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return fmt.Errorf("reading the body of job %s: %w", j.ID, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("reading the body of job %s: %w", j.ID, err)
	}
	if err := item.Value(func(v []byte) error { return decodeBody(v, j) }); err != nil {
		return fmt.Errorf("decoding the body of job %s: %w", j.ID, err)
	}
	return nil
}

func (t *badgerTx) Job(id string) (*Job, error) {
	j, legacy, err := t.loadHead(id)
	if err != nil {
		return nil, err
	}
	var body []byte
	if legacy {
		body = encodeBody(j)
	} else if err := t.loadBody(j); err != nil {
		return nil, err
	}
	t.remember(j, body)
	return j, nil
}

func (t *badgerTx) JobHead(id string) (*Job, error) {
	j, legacy, err := t.loadHead(id)
	if err != nil {
		return nil, err
	}
	if legacy {
		t.remember(j, encodeBody(j)) // the next write stores this body in its own record
		j.Payload = Payload{}
	} else {
		t.remember(j, nil)
	}
	return j, nil
}

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
	job.State, job.chainFlags = StatePending, 0 // enterChain may make it wait
	return true, t.write(job, nil, encodeBody(job))
}

func (t *badgerTx) PutJob(job *Job) error {
	body := encodeBody(job)
	old, err := t.stored(job.ID)
	if errors.Is(err, ErrNotFound) {
		return t.write(job, nil, body)
	}
	if err != nil {
		return err
	}
	if old.legacyBody == nil {
		same, err := t.bodyIs(job.ID, body)
		if err != nil {
			return err
		}
		if same {
			body = nil // the body record stays as it is
		}
	}
	return t.write(job, old, body)
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
	return t.write(job, old, old.legacyBody)
}

// chainRec is a chain record as stored (c/<chain>). A tail record (chainRecV2 first) names the
// job that entered the chain last; whether it is still open tells whether the next job waits.
// Finishing a job of a tail record touches the chain only if a job waits behind it
// (chainWaiter). Stores written before hold count records instead: the number of the chain's
// unfinished jobs, which every job entering or finishing rewrites; such a chain keeps them
// until it has no unfinished job left.
type chainRec struct {
	exists bool
	legacy bool   // a count record
	count  uint64 // unfinished jobs, in a count record
	next   uint64 // sequence number of the next waiting job
	tail   string // the job that entered last, in a tail record
}

// chainRecV2 is the first byte of a tail record: chainRecV2, 8-byte next sequence number, tail
// job ID. A count record is 16 bytes whose first is the top byte of a count, never this.
const chainRecV2 = 0xC1

// Chain bookkeeping flags of a job (Job.chainFlags), stored in its head.
const (
	// chainLinked marks a job that entered its chain under a tail record. A job without it
	// entered under a count record (or was stored before tail records), and finishing it
	// updates the count.
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
	case len(v) == 16:
		c = chainRec{exists: true, legacy: true, count: binary.BigEndian.Uint64(v), next: binary.BigEndian.Uint64(v[8:])}
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

// putChain stores the record of chain name; a count record whose count is 0 is deleted.
func (t *badgerTx) putChain(name string, c chainRec) error {
	c.exists = true
	t.cacheChain(name, c)
	key := []byte(prefixChain + name)
	if c.legacy {
		if c.count == 0 {
			t.cacheChain(name, chainRec{})
			return t.txn.Delete(key)
		}
		v := binary.BigEndian.AppendUint64(nil, c.count)
		return t.txn.Set(key, binary.BigEndian.AppendUint64(v, c.next))
	}
	v := make([]byte, 0, 9+len(c.tail))
	v = binary.BigEndian.AppendUint64(append(v, chainRecV2), c.next)
	return t.txn.Set(key, append(v, c.tail...))
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
	if c.legacy {
		job.chainFlags = 0
		if old == nil && c.count > 0 {
			job.State = StateWaiting
		}
		if job.State == StateWaiting {
			if err := t.txn.Set(waitKey(job.Chain, c.next, job.ID), nil); err != nil {
				return err
			}
			c.next++
		}
		c.count++
		return t.putChain(job.Chain, c)
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
	j, legacy, err := t.loadHead(id)
	if err != nil {
		return err
	}
	if j.chainFlags&chainWaiter != 0 {
		return nil
	}
	old, err := t.stored(id)
	if err != nil {
		return err
	}
	var body []byte
	if legacy {
		body = encodeBody(j)
		j.Payload = Payload{}
	}
	j.chainFlags |= chainWaiter
	return t.writeIndexes(j, old, body)
}

// leaveChain keeps the chain's bookkeeping when job finished: the first job waiting behind it,
// if any, becomes pending.
func (t *badgerTx) leaveChain(job *Job, old *seenJob) error {
	if job.Chain == "" || !Finished(job.State) || old == nil || Finished(old.State) {
		return nil
	}
	if job.chainFlags&chainLinked != 0 {
		if job.chainFlags&chainWaiter == 0 {
			return nil // nothing waits behind it: the chain stays as it is
		}
		return t.promoteWaiter(job)
	}
	c, err := t.chain(job.Chain)
	if err != nil {
		return err
	}
	if !c.legacy {
		return t.promoteWaiter(job) // not expected: its count record was dropped meanwhile
	}
	if c.count > 0 {
		c.count--
	}
	if err := t.putChain(job.Chain, c); err != nil {
		return err
	}
	if c.count == 0 {
		return nil // nothing of the chain waits
	}
	return t.promoteWaiter(job)
}

// promoteWaiter makes the first job waiting in job's chain pending, due when job finished. Wait
// entries of jobs that no longer wait (replayed meanwhile) are dropped on the way.
func (t *badgerTx) promoteWaiter(job *Job) error {
	opts := badger.DefaultIteratorOptions
	opts.PrefetchValues = false
	opts.Prefix = append([]byte(prefixWait+job.Chain), 0)
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
		return t.writeIndexes(nextJob, &prev, prev.legacyBody)
	}
}

// write stores job's head, and body unless it is nil (the body record stays as it is), moves
// its index entries from those of old (nil for a new job) and keeps its chain's bookkeeping.
func (t *badgerTx) write(job *Job, old *seenJob, body []byte) error {
	if old != nil {
		// The flags as stored win: the caller's copy may predate a job chained behind it, or
		// be built anew. Entering the chain again (a replay) sets them afresh.
		job.chainFlags |= old.chainFlags
	}
	if err := t.enterChain(job, old); err != nil {
		return err
	}
	if err := t.writeIndexes(job, old, body); err != nil {
		return err
	}
	return t.leaveChain(job, old)
}

// writeIndexes stores job's head, and body unless it is nil, and moves its index entries from
// those of old.
func (t *badgerTx) writeIndexes(job *Job, old *seenJob, body []byte) error {
	if old != nil {
		var key []byte
		switch old.State {
		case StatePending:
			key = dueKey(old.DueAt, old.ID)
			switch parked, known := t.offered[old.ID]; {
			case known && parked:
				key = parkKey(Destination(old.URL), old.DueAt, old.ID)
			case known:
			case t.b.mayBeParked(Destination(old.URL)):
				pk := parkKey(Destination(old.URL), old.DueAt, old.ID)
				if _, err := t.txn.Get(pk); err == nil {
					key = pk // set aside: not in the due index
				} else if !errors.Is(err, badger.ErrKeyNotFound) {
					return err
				}
			}
			delete(t.offered, old.ID)
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
	if err := t.txn.Set([]byte(prefixJob+job.ID), encodeHead(job)); err != nil {
		return err
	}
	if body != nil {
		if err := t.txn.Set([]byte(prefixBody+job.ID), body); err != nil {
			return err
		}
	}
	t.remember(job, nil)
	switch job.State {
	case StatePending:
		k := dueKey(job.DueAt, job.ID)
		t.b.lw.wrote(t, "", string(k[len(prefixDue):]))
		return t.txn.Set(k, []byte(Destination(job.URL)))
	case StateLeased:
		return t.txn.Set([]byte(prefixLease+job.ID), nil)
	case StateDelivered, StateDead:
		return t.txn.Set(finKey(job.State, job.FinishedAt, job.ID), nil)
	}
	return nil
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
		if c.exists && !c.legacy && c.tail == id { // the chain has no unfinished job left
			t.cacheChain(j.Chain, chainRec{})
			if err := t.txn.Delete([]byte(prefixChain + j.Chain)); err != nil {
				return err
			}
		}
	}
	if err := t.txn.Delete(finKey(j.State, j.FinishedAt, j.ID)); err != nil {
		return err
	}
	delete(t.seen, id)
	if err := t.txn.Delete([]byte(prefixBody + id)); err != nil {
		return err
	}
	return t.txn.Delete([]byte(prefixJob + id))
}

// dueRef is a due-index or set-aside entry: a pending job's due time and ID.
type dueRef struct {
	at uint64
	id string
}

func (t *badgerTx) Due(now time.Time, limit int) ([]*Job, error) {
	if limit <= 0 {
		return nil, nil
	}
	end := unixNanos(now)
	var refs []dueRef
	// The due index, then every destination's set-aside jobs: each gives at most limit refs.
	collect := func(prefix []byte) {
		it := t.indexIterator(prefix)
		defer it.Close()
		idx := indexOf(prefix)
		if !it.Valid() {
			t.saw(idx, noEntry)
		}
		n := 0
		for ; it.Valid() && n < limit; it.Next() {
			k := it.Item().Key()[len(prefix):]
			at := binary.BigEndian.Uint64(k)
			if n == 0 {
				t.saw(idx, string(k))
			}
			if at > end {
				break
			}
			refs = append(refs, dueRef{at: at, id: string(k[8:])})
			n++
		}
	}
	collect([]byte(prefixDue))
	for dest := range t.b.parkedDests() {
		collect(append([]byte(prefixPark+dest), 0))
	}
	slices.SortFunc(refs, func(a, b dueRef) int {
		if a.at != b.at {
			return cmp.Compare(a.at, b.at)
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

// indexIterator opens an iterator over the index with prefix (the due index or a destination's
// set-aside list), positioned at the index's low-water bound; values are read only on demand.
// The caller closes it.
func (t *badgerTx) indexIterator(prefix []byte) *badger.Iterator {
	opts := badger.DefaultIteratorOptions
	opts.PrefetchValues = false
	opts.Prefix = prefix
	it := t.txn.NewIterator(opts)
	it.Seek(seekKey(prefix, t.b.lw.from(indexOf(prefix))))
	return it
}

// firstKey returns a copy of the first key with prefix, nil if there is none.
func (t *badgerTx) firstKey(prefix []byte) []byte {
	it := t.indexIterator(prefix)
	defer it.Close()
	idx := indexOf(prefix)
	if !it.Valid() {
		t.saw(idx, noEntry)
		return nil
	}
	k := it.Item().KeyCopy(nil)
	t.saw(idx, string(k[len(prefix):]))
	return k
}

func (t *badgerTx) NextDue() (time.Time, bool, error) {
	var best uint64
	found := false
	consider := func(prefix []byte) {
		if k := t.firstKey(prefix); k != nil {
			if at := binary.BigEndian.Uint64(k[len(prefix):]); !found || at < best {
				best, found = at, true
			}
		}
	}
	consider([]byte(prefixDue))
	for dest := range t.b.parkedDests() {
		consider(append([]byte(prefixPark+dest), 0))
	}
	if !found {
		return time.Time{}, false, nil
	}
	return time.Unix(0, int64(best)), true, nil
}

// ScanDue first offers the set-aside jobs of destinations that are no longer busy, oldest
// destination first, then walks the due index. In a read-write transaction a due job whose
// destination is busy is, once the scan passed over parkAfter such jobs, moved from the due
// index to its destination's set-aside list (its Job record, still pending with the same DueAt,
// is not rewritten), at most parkBudget per scan. Jobs that skip reports are passed over
// without a trace: the bound of later scans may move past them (see Tx.ScanDue).
func (t *badgerTx) ScanDue(now time.Time, skip func(id string) bool, busy func(dest string) bool, take func(id, dest string) bool) (ScanResult, error) {
	if busy == nil {
		busy = func(string) bool { return false }
	}
	if skip == nil {
		skip = func(string) bool { return false }
	}
	end := unixNanos(now)

	// Set-aside jobs of destinations with capacity again, oldest head first.
	type head struct {
		dest string
		at   uint64
	}
	var heads []head
	for dest, gen := range t.b.parkedDests() {
		if busy(dest) {
			continue
		}
		prefix := append([]byte(prefixPark+dest), 0)
		k := t.firstKey(prefix)
		if k == nil {
			if t.update {
				dest, gen := dest, gen
				t.committed = append(t.committed, func() { t.b.dropParked(dest, gen) })
			}
			continue
		}
		heads = append(heads, head{dest: dest, at: binary.BigEndian.Uint64(k[len(prefix):])})
	}
	slices.SortFunc(heads, func(a, b head) int { return cmp.Compare(a.at, b.at) })
	for _, h := range heads {
		more, err := t.offerParked(h.dest, end, skip, busy, take)
		if err != nil || more {
			return ScanResult{More: more}, err
		}
	}

	// The due index.
	it := t.indexIterator([]byte(prefixDue))
	defer it.Close()
	passed, setAside := 0, 0
	runs := map[string]int{} // due jobs passed over, per busy destination
	// The scan's first entry that stays in the index bounds the index from below for later
	// scans; entries this scan sets aside leave it and do not count.
	first := true
	note := func(k []byte) {
		if first {
			t.saw("", string(k[len(prefixDue):]))
			first = false
		}
	}
	for ; it.Valid(); it.Next() {
		item := it.Item()
		k := item.Key()
		at := binary.BigEndian.Uint64(k[len(prefixDue):])
		if at > end {
			note(k)
			return ScanResult{Next: time.Unix(0, int64(at))}, nil
		}
		id := string(k[len(prefixDue)+8:])
		if skip(id) {
			continue
		}
		dest, err := t.dueDest(item, id)
		if err != nil {
			return ScanResult{}, err
		}
		if !busy(dest) {
			note(k)
			t.offer(id, false)
			if !take(id, dest) {
				return ScanResult{More: true}, nil
			}
			continue
		}
		passed++
		runs[dest]++
		suffix := k[len(prefixDue):]
		if !t.update || setAside >= parkBudget ||
			runs[dest] <= parkAfter && !t.b.isBacklogged(dest) && !t.b.passedBefore(suffix) {
			note(k)
			if passed >= skipBudget || t.update && passed > parkAfter+parkBudget {
				return ScanResult{More: true}, nil
			}
			continue
		}
		setAside++
		t.b.addParked(dest, runs[dest] > parkAfter)
		pk := parkKeyNanos(dest, at, id)
		t.b.lw.wrote(t, dest, string(pk[len(prefixPark)+len(dest)+1:]))
		if err := t.txn.Delete(item.KeyCopy(nil)); err != nil {
			return ScanResult{}, fmt.Errorf("setting aside job %s: %w", id, err)
		}
		if err := t.txn.Set(pk, nil); err != nil {
			return ScanResult{}, fmt.Errorf("setting aside job %s: %w", id, err)
		}
	}
	if first {
		t.saw("", noEntry) // the index holds nothing from the bound on but what this scan set aside
	}
	return ScanResult{}, nil
}

// offerParked offers the set-aside jobs of dest, oldest first, while dest is not busy. more is
// true when take asked to stop.
func (t *badgerTx) offerParked(dest string, end uint64, skip func(id string) bool, busy func(string) bool, take func(id, dest string) bool) (more bool, err error) {
	prefix := append([]byte(prefixPark+dest), 0)
	it := t.indexIterator(prefix)
	defer it.Close()
	for ; it.Valid(); it.Next() {
		k := it.Item().Key()[len(prefix):]
		if binary.BigEndian.Uint64(k) > end || busy(dest) {
			return false, nil
		}
		id := string(k[8:])
		if skip(id) {
			continue
		}
		t.offer(id, true)
		if !take(id, dest) {
			return true, nil
		}
	}
	return false, nil
}

// dueDest reads the destination stored in a due-index entry; entries written before
// destinations were stored there have none, and the job tells.
func (t *badgerTx) dueDest(item *badger.Item, id string) (string, error) {
	var dest string
	if err := item.Value(func(v []byte) error { dest = string(v); return nil }); err != nil {
		return "", fmt.Errorf("reading due job %s: %w", id, err)
	}
	if dest != "" {
		return dest, nil
	}
	j, err := t.stored(id)
	if err != nil {
		return "", fmt.Errorf("loading due job %s: %w", id, err)
	}
	return Destination(j.URL), nil
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
		var legacy bool
		err := it.Item().Value(func(v []byte) (err error) { legacy, err = decodeJobRecord(v, j); return err })
		if err != nil {
			return fmt.Errorf("decoding job %s: %w", j.ID, err)
		}
		switch {
		case !withBody:
			j.Payload = Payload{}
		case !legacy:
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
