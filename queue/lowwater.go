package queue

import "sync"

// lowWater keeps, for the due index (index "") and for each destination's set-aside list (index
// = the destination), a lower bound of the keys there (due time and job ID, after the prefix). Scans seek to it
// instead of starting at the head of the index, where the entries of jobs leased since the last
// compaction linger as deletion markers that an iterator would otherwise walk one by one.
//
// The bound stays a bound under concurrent transactions: a write lowers it before its
// transaction commits, and a scan raises it, once its own transaction ended, only as far as the
// first entry it saw, the entries written by transactions that committed after it began (which
// its snapshot may miss) and those written by transactions still open.
type lowWater struct {
	mu      sync.Mutex
	low     map[string]string               // absent means "", below every key
	open    map[*badgerTx]map[string]string // smallest key written per index by each open transaction
	watches map[*badgerTx]map[string]string // per transaction: smallest key committed by others since it began
}

func newLowWater() *lowWater {
	return &lowWater{low: map[string]string{}, open: map[*badgerTx]map[string]string{}, watches: map[*badgerTx]map[string]string{}}
}

// begin starts watching commits for t; call it before t's snapshot is taken.
func (l *lowWater) begin(t *badgerTx) {
	l.mu.Lock()
	l.watches[t] = nil
	l.mu.Unlock()
}

// from returns the bound of index idx.
func (l *lowWater) from(idx string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.low[idx]
}

// wrote records that t writes the entry with key suffix at into index idx.
func (l *lowWater) wrote(t *badgerTx, idx string, at string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if low, ok := l.low[idx]; ok && at < low {
		l.low[idx] = at
	}
	m := l.open[t]
	if m == nil {
		m = map[string]string{}
		l.open[t] = m
	}
	if v, ok := m[idx]; !ok || at < v {
		m[idx] = at
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
			if committed && len(seen) > 0 {
				// t's own writes bound what it saw after them too.
				for idx, at := range w {
					if v, ok := seen[idx]; ok && at < v {
						seen[idx] = at
					}
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
		if bound > l.low[idx] {
			l.low[idx] = bound
		}
	}
}

// forget drops the bound of a destination whose set-aside list is gone.
func (l *lowWater) forget(idx string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.low, idx)
}

// seekKey is the key to seek to in an index with prefix: prefix followed by the bound.
func seekKey(prefix []byte, bound string) []byte {
	return append(append(make([]byte, 0, len(prefix)+len(bound)), prefix...), bound...)
}

// noEntry is the first key of an index found empty: above every key suffix, since due times
// (the first 8 bytes) stay below 2^63.
const noEntry = "\xff\xff\xff\xff\xff\xff\xff\xff\xff"
