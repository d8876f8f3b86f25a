package queue

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"

	"github.com/dgraph-io/badger/v4"
)

// The Badger store keeps the number of jobs in each state in one record (m/counts), rewritten in
// every transaction that changes a state. No such transaction reads the record: it writes the
// counts blindly, so that concurrent writers never conflict over them. What it writes is the
// store's counts as of the last commit, kept in memory (countBook), plus its own changes; the
// transactions that change counts commit one at a time for that, each after the one before it
// has taken effect. A Badger commit without sync_writes is a write to memory, so waiting for
// one costs little; the wait for the disk (fileSyncer) comes after, and is shared.
//
// One record written with each transaction, rather than a record per transaction added up later,
// keeps an enqueue of one job to the writes the job needs and one more; the records of a change
// log would each also have to be read and deleted once added up.

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
	if len(v) != 0 {
		return c, fmt.Errorf("%w: bad count record", errCorrupt)
	}
	return c, nil
}

// countBook holds the counts as of the last commit and lets the transactions that change them
// commit one at a time.
type countBook struct {
	mu  sync.Mutex // held from reading now to the end of a commit
	now counts
}

// load reads the counts from the record.
func (k *countBook) load(txn *badger.Txn) error {
	c, err := readCounts(txn)
	if err != nil {
		return err
	}
	k.mu.Lock()
	k.now = c
	k.mu.Unlock()
	return nil
}

// commit commits t's transaction: with the count record, when t changed counts.
func (k *countBook) commit(t *badgerTx) error {
	if t.delta.zero() {
		return t.txn.Commit()
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	c := k.now
	for i := range c {
		c[i] += t.delta[i]
	}
	if err := t.txn.Set([]byte(keyCounts), c.encode()); err != nil {
		return err
	}
	// When Commit fails, nothing of the transaction took effect: it is retried from the start
	// or given up, and the counts stay as they are.
	if err := t.txn.Commit(); err != nil {
		return err
	}
	k.now = c
	return nil
}

// readCounts reads the count record.
func readCounts(txn *badger.Txn) (counts, error) {
	item, err := txn.Get([]byte(keyCounts))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return counts{}, fmt.Errorf("reading the job counts: %w: no count record", errCorrupt)
	}
	if err != nil {
		return counts{}, fmt.Errorf("reading the job counts: %w", err)
	}
	var c counts
	if err := item.Value(func(v []byte) (err error) { c, err = decodeCounts(v); return err }); err != nil {
		return counts{}, fmt.Errorf("reading the job counts: %w", err)
	}
	return c, nil
}

// Counts reads the count record, which an Update that calls it then conflicts with every
// transaction changing counts that commits before it: use it in View.
func (t *badgerTx) Counts() (map[string]int64, error) {
	c, err := readCounts(t.txn)
	if err != nil {
		return nil, err
	}
	m := make(map[string]int64, len(c))
	for i, s := range countedStates {
		m[s] = c[i] + t.delta[i] // with this transaction's own changes, not written yet
	}
	return m, nil
}
