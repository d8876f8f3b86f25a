//go:build linux

package queue

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/faxhook/caddy-faxhook/queue/spacetest"
)

// spaceLog records the gate's reports.
type spaceLog struct {
	mu  sync.Mutex
	sts []SpaceStatus
}

func (l *spaceLog) add(st SpaceStatus) { l.mu.Lock(); l.sts = append(l.sts, st); l.mu.Unlock() }

func (l *spaceLog) last() (SpaceStatus, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.sts) == 0 {
		return SpaceStatus{}, 0
	}
	return l.sts[len(l.sts)-1], len(l.sts)
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestSpaceGateRefusesWritesKeepsReads(t *testing.T) {
	mnt := spacetest.Tmpfs(t, 96<<20)
	var log spaceLog
	b, err := OpenBadger(filepath.Join(mnt, "db"), BadgerOptions{MinFreeSpace: MinFreeSpaceFloor, OnSpace: log.add})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	put := func(k string) error { return b.Update(func(tx Tx) error { return tx.PutState(k, []byte("v")) }) }
	if err := put("before"); err != nil {
		t.Fatal(err)
	}

	filler := spacetest.Fill(t, mnt, 4<<10, "filler")
	// Far from the reserve, a write may go on a check up to spaceCheckInterval old (which saw
	// the space before the filler): the next write after that interval checks again.
	time.Sleep(spaceCheckInterval)
	err = put("while-full")
	if !errors.Is(err, ErrNoSpace) {
		t.Fatalf("a write with 4 KiB free: %v, want ErrNoSpace", err)
	}
	if st, n := log.last(); n != 1 || !st.Full || st.Reserve != MinFreeSpaceFloor {
		t.Fatalf("gate reports %d, last %+v; want one report, full", n, st)
	}
	if err := b.UpdateLazy(func(tx Tx) error { return tx.PutState("lazy", nil) }); !errors.Is(err, ErrNoSpace) {
		t.Fatalf("a lazy write with 4 KiB free: %v, want ErrNoSpace", err)
	}
	if err := b.View(func(tx Tx) error { _, err := tx.State("before"); return err }); err != nil {
		t.Fatalf("a read while full: %v", err)
	}
	if err := b.CollectGarbage(); err != nil && !errors.Is(err, ErrNoSpace) {
		t.Fatalf("garbage collection while full: %v", err)
	}

	// The watcher reopens the gate once space returns, without a write.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the gate to reopen", func() bool { st, n := log.last(); return n == 2 && !st.Full })
	if err := put("after"); err != nil {
		t.Fatalf("a write once space returned: %v", err)
	}
}

func TestOpenOnFullDiskWaitsForSpace(t *testing.T) {
	mnt := spacetest.Tmpfs(t, 96<<20)
	dir := filepath.Join(mnt, "db")
	b, err := OpenBadger(dir, BadgerOptions{MinFreeSpace: MinFreeSpaceFloor})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Update(func(tx Tx) error { return tx.PutState("kept", []byte("1")) }); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}

	filler := spacetest.Fill(t, mnt, 4<<10, "filler")
	opened := make(chan struct{})
	b, err = OpenBadger(dir, BadgerOptions{MinFreeSpace: MinFreeSpaceFloor, OnOpen: func() { close(opened) }})
	if err != nil {
		t.Fatalf("opening on a full disk: %v", err)
	}
	defer b.Close()
	if b.Opened() || !b.Space().Full {
		t.Fatalf("opened %v, space %+v on a full disk; want the opening deferred", b.Opened(), b.Space())
	}
	if err := b.View(func(Tx) error { return nil }); !errors.Is(err, ErrNoSpace) {
		t.Fatalf("a read before the database opened: %v, want ErrNoSpace", err)
	}
	if err := b.Update(func(Tx) error { return nil }); !errors.Is(err, ErrNoSpace) {
		t.Fatalf("a write before the database opened: %v, want ErrNoSpace", err)
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	select {
	case <-opened:
	case <-time.After(20 * time.Second):
		t.Fatal("the database did not open once space returned")
	}
	var v []byte
	if err := b.View(func(tx Tx) error { v, err = tx.State("kept"); return err }); err != nil || string(v) != "1" {
		t.Fatalf("what was stored before: %q, %v", v, err)
	}
}

func TestCloseBeforeDeferredOpen(t *testing.T) {
	mnt := spacetest.Tmpfs(t, 64<<20)
	spacetest.Fill(t, mnt, 4<<10, "filler")
	b, err := OpenBadger(filepath.Join(mnt, "db"), BadgerOptions{MinFreeSpace: MinFreeSpaceFloor})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("closing a store that never opened: %v", err)
	}
	if err := b.View(func(Tx) error { return nil }); !errors.Is(err, ErrClosed) {
		t.Fatalf("a read after Close: %v, want ErrClosed", err)
	}
}

func TestValidateMinFreeSpace(t *testing.T) {
	for n, ok := range map[int64]bool{0: true, MinFreeSpaceFloor: true, DefaultMinFreeSpace: true, MinFreeSpaceCeiling: true,
		-1: false, 1 << 20: false, MinFreeSpaceFloor - 1: false, MinFreeSpaceCeiling + 1: false} {
		if err := ValidateMinFreeSpace(n); (err == nil) != ok {
			t.Errorf("ValidateMinFreeSpace(%d) = %v", n, err)
		}
	}
	if _, err := OpenBadger(t.TempDir(), BadgerOptions{MinFreeSpace: 1 << 20}); err == nil || !strings.Contains(err.Error(), "min_free_space") {
		t.Fatalf("opening with a 1 MiB reserve: %v", err)
	}
}
