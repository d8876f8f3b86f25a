package queue

import (
	"bytes"
	"encoding/binary"
	"sync"

	"github.com/dgraph-io/badger/v4"
)

// lowWater keeps, for each destination's due index, whether it may hold entries and a lower
// bound of its keys (due time and job ID, after the prefix). The dispatcher lists the
// destinations with pending jobs from it, one seek each, and scans seek to the bound instead of
// starting at the head of the index, where the entries of jobs delivered since the last
// compaction linger as deletion markers that an iterator would otherwise walk one by one.
//
// A destination is listed while it may hold entries: a write adds it before its transaction
// commits, and a scan drops it, once its own transaction ended, only when it found the index
// empty and no transaction that committed after it began, or is still open, wrote there. The
// bound stays a bound the same way: a write lowers it before its transaction commits, and a scan
// raises it only as far as the first entry it saw, the entries written by transactions that
// committed after it began (which its snapshot may miss) and those written by transactions still
// open.
type lowWater struct {
	mu      sync.Mutex
	low     map[string]string               // per destination that may hold entries: the bound
	open    map[*badgerTx]map[string]string // smallest key written per index by each open transaction
	watches map[*badgerTx]map[string]string // per transaction: smallest key committed by others since it began
}

func newLowWater() *lowWater {
	return &lowWater{low: map[string]string{}, open: map[*badgerTx]map[string]string{}, watches: map[*badgerTx]map[string]string{}}
}

// load lists the destinations that hold due-index entries, one seek each.
func (l *lowWater) load(txn *badger.Txn) error {
	opts := badger.DefaultIteratorOptions
	opts.PrefetchValues = false
	opts.Prefix = []byte(prefixDue)
	it := txn.NewIterator(opts)
	defer it.Close()
	l.mu.Lock()
	defer l.mu.Unlock()
	for it.Rewind(); it.Valid(); {
		k := it.Item().Key()[len(prefixDue):]
		i := bytes.IndexByte(k, 0)
		if i < 0 {
			return errCorrupt
		}
		dest := string(k[:i])
		l.low[dest] = string(k[i+1:])
		it.Seek(append([]byte(prefixDue+dest), 1))
	}
	return nil
}

// candidate is a destination whose due index may hold an entry due by a given time, with the
// bound to seek to.
type candidate struct{ dest, bound string }

// candidates returns the destinations whose due index may hold an entry due by end (unix
// nanoseconds), and the earliest due time of the bounds of the others (0 if none).
func (l *lowWater) candidates(end uint64) (cands []candidate, later uint64) {
	var endKey [8]byte
	binary.BigEndian.PutUint64(endKey[:], end)
	l.mu.Lock()
	defer l.mu.Unlock()
	for dest, bound := range l.low {
		if len(bound) >= 8 && bound[:8] > string(endKey[:]) {
			if at := binary.BigEndian.Uint64([]byte(bound[:8])); later == 0 || at < later {
				later = at
			}
			continue
		}
		cands = append(cands, candidate{dest, bound})
	}
	return cands, later
}

// dests returns the destinations whose due index may hold entries.
func (l *lowWater) dests() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := make([]string, 0, len(l.low))
	for d := range l.low {
		s = append(s, d)
	}
	return s
}

// begin starts watching commits for t; call it before t's snapshot is taken.
func (l *lowWater) begin(t *badgerTx) {
	l.mu.Lock()
	l.watches[t] = nil
	l.mu.Unlock()
}

// from returns the bound of dest's index.
func (l *lowWater) from(dest string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.low[dest]
}

// wrote records that t writes the entry with key suffix at into dest's index.
func (l *lowWater) wrote(t *badgerTx, dest string, at string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if low, ok := l.low[dest]; !ok || at < low {
		l.low[dest] = at
	}
	m := l.open[t]
	if m == nil {
		m = map[string]string{}
		l.open[t] = m
	}
	if v, ok := m[dest]; !ok || at < v {
		m[dest] = at
	}
}

// end closes t's books: committed tells whether its writes took effect (or, for a read-only
// transaction, that it completed); seen holds, per index t scanned from its bound, the key suffix
// of the first entry it found there (noEntry for none).
func (l *lowWater) end(t *badgerTx, committed bool, seen map[string]string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if w := l.open[t]; w != nil {
		delete(l.open, t)
		if committed {
			for other, m := range l.watches {
				if other == t {
					continue
				}
				if m == nil {
					m = map[string]string{}
					l.watches[other] = m
				}
				for idx, at := range w {
					if v, ok := m[idx]; !ok || at < v {
						m[idx] = at
					}
				}
			}
			// t's own writes bound what it saw after them too.
			for idx, at := range w {
				if v, ok := seen[idx]; ok && at < v {
					seen[idx] = at
				}
			}
		}
	}
	watched := l.watches[t]
	delete(l.watches, t)
	if !committed {
		return
	}
	for idx, first := range seen {
		bound := first
		if v, ok := watched[idx]; ok && v < bound {
			bound = v
		}
		for _, m := range l.open {
			if v, ok := m[idx]; ok && v < bound {
				bound = v
			}
		}
		switch low, ok := l.low[idx]; {
		case bound == noEntry:
			delete(l.low, idx) // empty, and nobody writes there
		case !ok || bound > low:
			l.low[idx] = bound
		}
	}
}

// seekKey is the key to seek to in an index with prefix: prefix followed by the bound.
func seekKey(prefix []byte, bound string) []byte {
	return append(append(make([]byte, 0, len(prefix)+len(bound)), prefix...), bound...)
}

// noEntry is the first key of an index found empty: above every key suffix, since due times
// (the first 8 bytes) stay below 2^63.
const noEntry = "\xff\xff\xff\xff\xff\xff\xff\xff\xff"
