package queue

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// Free-space reserve of the Badger store (BadgerOptions.MinFreeSpace).
//
// Badger writes its memtable write-ahead logs (*.mem, 32 MiB each), value logs (*.vlog, 128 MiB)
// and table files (*.sst) through memory maps of files it sizes up front. On a file system
// that allocates pages only when they are first written (tmpfs, and any file system for the
// sparse logs), a write into such a map when the file system has no page left is not an error
// Badger can return: the kernel raises SIGBUS, and the Go runtime kills the whole process
// (Caddy, and the fax API proxy with it). The store therefore stops writing while there is still
// room for everything Badger may write after the last admitted transaction; measured on tmpfs:
//
//   - one transaction: at most 2.4 MiB into the memtable's log (15% of the 16 MiB memtable),
//     plus its values of 64 KiB and more (valueThreshold), whole, into the value log: large
//     fax objects (the tracker packs about 512 KiB of them into one transaction) or a received
//     fax's PDF, up to max_file_size (20 MiB by default; the app raises the reserve to cover a
//     larger one);
//   - a memtable flush (when it is full, and at Close): a table file as large as the memtable's
//     data, up to 16 MiB, written before the log is deleted; with two memtables, two of them;
//   - Open: about 25 KiB of headers (a new memtable log, value log, DISCARD, MANIFEST), but a
//     memtable log left by a crash is replayed and flushed right after Open returns: a table
//     file of up to 16 MiB per log (measured: a 10 MB log left a 10 MB table file within 2 s).
//
// DefaultMinFreeSpace covers two memtable flushes (32 MiB) and a 20 MiB PDF with room to spare.
const (
	// DefaultMinFreeSpace is the reserve when BadgerOptions.MinFreeSpace is zero.
	DefaultMinFreeSpace int64 = 64 << 20
	// MinFreeSpaceFloor is the smallest reserve accepted: two memtable flushes.
	MinFreeSpaceFloor int64 = 32 << 20
	// MinFreeSpaceCeiling is the largest reserve accepted; more is taken for a unit mistake.
	MinFreeSpaceCeiling int64 = 1 << 40
)

// ErrNoSpace is returned (wrapped) by every write while the storage directory's file system has
// less free space than the reserve (BadgerOptions.MinFreeSpace), and by every operation while a
// store opened on a full disk waits for space to open its database. Reads of an open store keep
// working.
var ErrNoSpace = errors.New("faxhook storage is short of free space")

// ValidateMinFreeSpace checks a reserve given in bytes; zero means the default.
func ValidateMinFreeSpace(n int64) error {
	if n == 0 {
		return nil
	}
	if n < MinFreeSpaceFloor {
		return fmt.Errorf("%d bytes is below the minimum of %d (32 MiB): Badger may write that much at once after the last admitted write (two memtable flushes), and a write into a full file system crashes the process", n, MinFreeSpaceFloor)
	}
	if n > MinFreeSpaceCeiling {
		return fmt.Errorf("%d bytes is above the maximum of %d (1 TiB); is the unit right?", n, MinFreeSpaceCeiling)
	}
	return nil
}

// SpaceStatus is the state of the store's free-space gate, reported to BadgerOptions.OnSpace.
type SpaceStatus struct {
	// Full is true while writes are refused (free space below the reserve).
	Full bool
	// Free is the space available to the process on the storage's file system, in bytes.
	Free int64
	// Reserve is the free space below which writes are refused, in bytes.
	Reserve int64
}

const (
	// spaceCheckInterval is how long a write may go on the last statfs while the free space
	// seen then was at least twice the reserve. Faxhook writes far less than one reserve (64 MiB)
	// in 100 ms, so the space cannot run out between two checks unnoticed, and a burst of
	// commits costs one statfs per 100 ms, not one each. Nearer the reserve every write checks
	// (statfs costs about a microsecond, a commit tens).
	spaceCheckInterval = 100 * time.Millisecond
	// spaceWatchInterval is how often the watcher checks on its own: it reopens the gate (and
	// opens a database deferred at start) when space returns while nothing writes, and keeps
	// the free-space figure of the metrics fresh. Once a second is quick enough for an operator
	// freeing space and costs nothing.
	spaceWatchInterval = time.Second
)

// spaceGate refuses writes while the free space of the storage's file system is below the
// reserve. It closes below the reserve and reopens only at reserve plus one eighth, so that a
// store writing right at the edge does not flap.
type spaceGate struct {
	dir      string
	reserve  int64
	onChange func(SpaceStatus)

	full    atomic.Bool
	free    atomic.Int64
	checked atomic.Int64 // unix nanos of the last statfs, 0 before the first

	mu sync.Mutex // serializes checks, so that changes are reported in order
}

func newSpaceGate(dir string, reserve int64, onChange func(SpaceStatus)) *spaceGate {
	if reserve == 0 {
		reserve = DefaultMinFreeSpace
	}
	return &spaceGate{dir: dir, reserve: reserve, onChange: onChange}
}

// allow returns nil when a write may go ahead, an error wrapping ErrNoSpace when not.
func (g *spaceGate) allow() error {
	now := time.Now().UnixNano()
	recent := now-g.checked.Load() < int64(spaceCheckInterval)
	switch {
	case recent && g.full.Load():
		return g.err()
	case recent && g.free.Load() >= 2*g.reserve:
		return nil
	}
	if st, _ := g.check(); st.Full {
		return g.err()
	}
	return nil
}

func (g *spaceGate) err() error {
	return fmt.Errorf("%w: %d bytes free in %s, writes pause below %d", ErrNoSpace, g.free.Load(), g.dir, g.reserve)
}

// status returns the gate's state as of the last check.
func (g *spaceGate) status() SpaceStatus {
	return SpaceStatus{Full: g.full.Load(), Free: g.free.Load(), Reserve: g.reserve}
}

// check reads the free space and opens or closes the gate, reporting a change to onChange
// (which must not block, nor use the store). When statfs fails the gate stays as it is.
func (g *spaceGate) check() (SpaceStatus, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	free, err := freeSpace(g.dir)
	g.checked.Store(time.Now().UnixNano())
	if err != nil {
		return g.status(), err
	}
	g.free.Store(free)
	was := g.full.Load()
	full := free < g.reserve
	if was {
		full = free < g.reserve+g.reserve/8
	}
	st := SpaceStatus{Full: full, Free: free, Reserve: g.reserve}
	if full != was {
		g.full.Store(full)
		if g.onChange != nil {
			g.onChange(st)
		}
	}
	return st, nil
}
