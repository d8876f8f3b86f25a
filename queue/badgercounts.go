package queue

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"

	"github.com/dgraph-io/badger/v4"
)

// The Badger store keeps the number of jobs in each state up to date in the transaction that
// changes a state, without a shared counter key: every transaction that changes states writes its
// changes blindly under a key of its own (n/<seq>), so concurrent writers never conflict over
// the counts, and Counts adds them to a base record (m/counts). A background fold adds settled
// changes into the base record and deletes them, so that Counts reads a few keys, not one per
// transaction ever committed.

// countedStates are the stored states, in the order of counts.
var countedStates = [...]string{StateWaiting, StatePending, StateDelivered, StateDead}

// counts holds a number per stored state (or a change of it), in the order of countedStates.
type counts [len(countedStates)]int64

// add changes the number of state by n; states that are not stored are not counted.
func (c *counts) add(state string, n int64) {
	for i, s := range countedStates {
		if s == state {
			c[i] += n
			return
		}
	}
}

func (c *counts) zero() bool { return *c == counts{} }

func (c *counts) encode() []byte {
	b := make([]byte, 0, 4*len(c))
	for _, n := range c {
		b = binary.AppendVarint(b, n)
	}
	return b
}

func decodeCounts(v []byte) (counts, error) {
	var c counts
	for i := range c {
		n, k := binary.Varint(v)
		if k <= 0 {
			return c, fmt.Errorf("%w: bad count record", errCorrupt)
		}
		c[i], v = n, v[k:]
	}
	return c, nil
}

// encodeCounts encodes the base record: the last change folded into it, then the counts.
func encodeCounts(folded uint64, c counts) []byte {
	return append(binary.BigEndian.AppendUint64(nil, folded), c.encode()...)
}

func decodeBase(v []byte) (uint64, counts, error) {
	if len(v) < 8 {
		return 0, counts{}, fmt.Errorf("%w: bad count record", errCorrupt)
	}
	c, err := decodeCounts(v[8:])
	return binary.BigEndian.Uint64(v), c, err
}

func deltaKey(seq uint64) []byte { return binary.BigEndian.AppendUint64([]byte(prefixDelta), seq) }

// foldEvery is how many committed changes make the store fold them into the base record, and
// foldMax how many one fold takes (a transaction deletes each: Badger bounds its size).
const (
	foldEvery = 1024
	foldMax   = 8192
)

// deltaLog numbers the count changes and knows which of them are settled: a fold may add only
// changes whose transactions ended, since a change numbered lower may commit after one numbered
// higher, and Counts reads only the changes numbered above the last one folded.
type deltaLog struct {
	foldMu   sync.Mutex // one fold at a time
	mu       sync.Mutex
	next     uint64              // the number of the next change
	open     map[uint64]struct{} // numbers handed out to transactions that have not ended
	unfolded int                 // changes committed since the last fold
	kick     chan struct{}       // asks gcLoop to fold
}

func newDeltaLog() *deltaLog {
	return &deltaLog{next: 1, open: map[uint64]struct{}{}, kick: make(chan struct{}, 1)}
}

// load continues the numbering after the last change stored.
func (l *deltaLog) load(txn *badger.Txn) error {
	item, err := txn.Get([]byte(keyCounts))
	if err != nil {
		return err
	}
	v, err := item.ValueCopy(nil)
	if err != nil {
		return err
	}
	folded, _, err := decodeBase(v)
	if err != nil {
		return err
	}
	opts := badger.DefaultIteratorOptions
	opts.PrefetchValues = false
	opts.Prefix = []byte(prefixDelta)
	opts.Reverse = true
	it := txn.NewIterator(opts)
	defer it.Close()
	it.Seek(append([]byte(prefixDelta), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff))
	last := folded
	if it.Valid() {
		if seq := binary.BigEndian.Uint64(it.Item().Key()[len(prefixDelta):]); seq > last {
			last = seq
		}
		l.unfolded = foldEvery // fold what an earlier run left at the first chance
	}
	l.mu.Lock()
	l.next = last + 1
	l.mu.Unlock()
	if l.unfolded > 0 {
		l.kickFold()
	}
	return nil
}

// take hands out the number of a transaction's change.
func (l *deltaLog) take() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	seq := l.next
	l.next++
	l.open[seq] = struct{}{}
	return seq
}

// done records that the transaction of change seq ended, committed or not.
func (l *deltaLog) done(seq uint64, committed bool) {
	l.mu.Lock()
	delete(l.open, seq)
	kick := false
	if committed {
		l.unfolded++
		kick = l.unfolded >= foldEvery
	}
	l.mu.Unlock()
	if kick {
		l.kickFold()
	}
}

func (l *deltaLog) kickFold() {
	select {
	case l.kick <- struct{}{}:
	default:
	}
}

// settled returns the highest number up to which every change's transaction has ended.
func (l *deltaLog) settled() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.next - 1
	for seq := range l.open {
		if seq <= s {
			s = seq - 1
		}
	}
	return s
}

// foldCounts adds settled changes to the base record and deletes them.
func (b *Badger) foldCounts() error {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if err := b.writable(); err != nil {
		return err
	}
	b.deltas.foldMu.Lock()
	defer b.deltas.foldMu.Unlock()
	upto := b.deltas.settled()
	n := 0
	var err error
	// A fold conflicts only with a transaction that read the counts (Counts in an Update).
	for try := 0; try < 3; try++ {
		if err = b.fold(upto, &n); !errors.Is(err, badger.ErrConflict) {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("folding job counts in %s: %w", b.dir, err)
	}
	b.deltas.mu.Lock()
	b.deltas.unfolded = max(0, b.deltas.unfolded-n)
	more := b.deltas.unfolded >= foldEvery
	b.deltas.mu.Unlock()
	if more {
		b.deltas.kickFold()
	}
	return nil
}

// fold runs one fold transaction over the changes up to upto; n is how many it folded.
func (b *Badger) fold(upto uint64, n *int) error {
	return b.db.Update(func(txn *badger.Txn) error {
		*n = 0
		folded, c, err := readBase(txn)
		if err != nil {
			return err
		}
		opts := badger.DefaultIteratorOptions
		opts.Prefix = []byte(prefixDelta)
		it := txn.NewIterator(opts)
		defer it.Close()
		last := folded
		for it.Seek(deltaKey(folded + 1)); it.Valid() && *n < foldMax; it.Next() {
			seq := binary.BigEndian.Uint64(it.Item().Key()[len(prefixDelta):])
			if seq > upto {
				break
			}
			var d counts
			if err := it.Item().Value(func(v []byte) (err error) { d, err = decodeCounts(v); return err }); err != nil {
				return fmt.Errorf("reading count change %d: %w", seq, err)
			}
			for i := range c {
				c[i] += d[i]
			}
			if err := txn.Delete(it.Item().KeyCopy(nil)); err != nil {
				return err
			}
			last, *n = seq, *n+1
		}
		if *n == 0 {
			return nil
		}
		return txn.Set([]byte(keyCounts), encodeCounts(last, c))
	})
}

// readBase reads the base record of the counts.
func readBase(txn *badger.Txn) (uint64, counts, error) {
	item, err := txn.Get([]byte(keyCounts))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return 0, counts{}, fmt.Errorf("reading the job counts: %w: no count record", errCorrupt)
	}
	if err != nil {
		return 0, counts{}, fmt.Errorf("reading the job counts: %w", err)
	}
	var folded uint64
	var c counts
	err = item.Value(func(v []byte) (err error) { folded, c, err = decodeBase(v); return err })
	if err != nil {
		return 0, counts{}, fmt.Errorf("reading the job counts: %w", err)
	}
	return folded, c, nil
}

func (t *badgerTx) Counts() (map[string]int64, error) {
	folded, c, err := readBase(t.txn)
	if err != nil {
		return nil, err
	}
	opts := badger.DefaultIteratorOptions
	opts.Prefix = []byte(prefixDelta)
	it := t.txn.NewIterator(opts)
	defer it.Close()
	// Folded changes are deleted; seeking past them keeps Counts from walking their deletion
	// markers.
	for it.Seek(deltaKey(folded + 1)); it.Valid(); it.Next() {
		var d counts
		if err := it.Item().Value(func(v []byte) (err error) { d, err = decodeCounts(v); return err }); err != nil {
			return nil, fmt.Errorf("reading the job counts: %w", err)
		}
		for i := range c {
			c[i] += d[i]
		}
	}
	m := make(map[string]int64, len(c))
	for i, s := range countedStates {
		m[s] = c[i] + t.delta[i] // with this transaction's own changes, not written yet
	}
	return m, nil
}
