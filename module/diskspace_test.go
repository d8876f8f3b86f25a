//go:build linux

package module

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/faxhook/caddy-faxhook/module/profile"
	"github.com/faxhook/caddy-faxhook/queue"
	"github.com/faxhook/caddy-faxhook/queue/spacetest"
)

// counterValue reads a counter through a registry of its own.
func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	mfs, err := reg.Gather()
	if err != nil || len(mfs) != 1 {
		t.Fatalf("gathering a counter: %v", err)
	}
	return mfs[0].GetMetric()[0].GetCounter().GetValue()
}

// A start on a full disk: the engine loads degraded (the journal's entries wait), announces it
// with faxhook_storage_full once the config started, drops what it cannot record without an
// error, and once space returns opens the store, replays the journal and emits faxhook_storage_ok;
// when the disk fills again, faxhook_storage_full.
func TestStorageFullDegradesAndRecovers(t *testing.T) {
	mnt := spacetest.Tmpfs(t, 96<<20)
	dir := filepath.Join(mnt, "storage")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	j, _, err := openJournal(dir)
	if err != nil {
		t.Fatal(err)
	}
	j.append(journalEntry{FaxIDs: []int64{77}, CallbackURLs: []string{"https://example.com/cb77"}})
	j.close()
	// Room for the send journal's writes, far below the store's reserve.
	filler := spacetest.Fill(t, mnt, 256<<10, "filler")

	e, err := loadEngine(storageSpec{key: dir, dir: dir, syncWrites: false, minFree: queue.MinFreeSpaceFloor}, zap.NewNop())
	if err != nil {
		t.Fatalf("loading the engine on a full disk: %v", err)
	}
	t.Cleanup(func() { engines.Delete(dir) })
	if !e.space.degraded() || e.store.Opened() {
		t.Fatalf("degraded %v, store opened %v on a full disk", e.space.degraded(), e.store.Opened())
	}

	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	h := &recordingHandler{gate: make(chan struct{}), got: make(chan caddy.Event, 16)}
	close(h.gate)
	ev, _ := newEventsApp(t, ctx, h, &e.ev, EventStorageFull, EventStorageOK)
	expect := func(name string) {
		t.Helper()
		select {
		case got := <-h.got:
			if got.Name() != name || got.Data["storage"] != dir || got.Data["min_free_space"] != queue.MinFreeSpaceFloor {
				t.Fatalf("event %s %v, want %s about %s", got.Name(), got.Data, name, dir)
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("no %s event", name)
		}
	}
	ev.Emit(ctx, "started", nil)
	expect(EventStorageFull)

	// Nothing the handler hands over fails while degraded.
	dropped := counterValue(t, metricDroppedObservations)
	send := &Observation{Faxes: []profile.Object{{}}, CallbackURLs: []string{"https://example.com/cb78"}}
	send.Faxes[0].Fax.ID = 78
	if err := e.sends.recordSync(send); err != nil {
		t.Fatalf("recording a send while degraded: %v", err)
	}
	poll := &Observation{Faxes: []profile.Object{{}}}
	poll.Faxes[0].Fax.ID = 79
	if err := e.sends.recordObserved([]*Observation{poll}); err != nil {
		t.Fatalf("recording an observation while degraded: %v", err)
	}
	if got := counterValue(t, metricDroppedObservations) - dropped; got < 1 {
		t.Fatalf("faxhook_storage_full_dropped_total rose by %v, want at least 1", got)
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	expect(EventStorageOK)
	deadline := time.Now().Add(20 * time.Second)
	for {
		err := e.store.View(func(tx queue.Tx) error { _, err := tx.State(faxKey(77)); return err })
		if err == nil && !e.space.degraded() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the journal's send was not recorded once space returned: %v (degraded %v)", err, e.space.degraded())
		}
		time.Sleep(20 * time.Millisecond)
	}

	// The send journaled while the store refused it is recorded too, with its callback_url.
	deadline = time.Now().Add(20 * time.Second)
	for {
		var rec trackedFax
		err := e.store.View(func(tx queue.Tx) error {
			v, err := tx.State(faxKey(78))
			if err != nil {
				return err
			}
			return json.Unmarshal(v, &rec)
		})
		if err == nil && len(rec.CallbackURLs) == 1 && rec.CallbackURLs[0] == "https://example.com/cb78" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the send journaled while the disk was full was not recorded once space returned: %v %+v", err, rec)
		}
		time.Sleep(20 * time.Millisecond)
	}

	// Full again while running: writes are refused and reported.
	spacetest.Fill(t, mnt, 4<<10, "filler")
	time.Sleep(150 * time.Millisecond) // far from the reserve the gate trusts a check for up to 100 ms
	if err := e.tracker.record([]*Observation{poll}); !errors.Is(err, queue.ErrNoSpace) {
		t.Fatalf("a write on a full disk: %v, want ErrNoSpace", err)
	}
	expect(EventStorageFull)
	if !e.space.degraded() {
		t.Fatal("not degraded on a full disk")
	}
}
