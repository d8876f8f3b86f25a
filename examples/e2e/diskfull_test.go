//go:build linux

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/faxhook/caddy-faxhook/examples/faxapp"
	"github.com/faxhook/caddy-faxhook/examples/harness"
	"github.com/faxhook/caddy-faxhook/examples/receiver"
	"github.com/faxhook/caddy-faxhook/queue/spacetest"
)

// The disk-full tests run faxhook's storage on a tmpfs of its own, the file system on which
// Badger's memory-mapped logs turned a full disk into SIGBUS and killed Caddy. They need root
// (mount); without it they skip.

const (
	tmpfsSize = 160 << 20
	// keep is what the filler leaves free: a few pages, far below faxhook's reserve (64 MiB by
	// default). Without the reserve, the next pages Badger touches in its memory-mapped logs
	// raise SIGBUS and Caddy dies; with it, faxhook writes nothing more, and the send journal's
	// writes fail with ENOSPC and fall back to a commit that the store refuses.
	keep = 16 << 10
)

// mountTmpfs mounts a tmpfs of tmpfsSize bytes and returns its directory; it is unmounted when
// the test ends (after Caddy stopped: cleanups run last-registered first).
func mountTmpfs(t *testing.T) string { return spacetest.Tmpfs(t, tmpfsSize) }

// fill writes a file into dir's file system that leaves about keep bytes free, and returns its
// path. It fills in two steps: faxhook checks the free space at most every 100 ms while it saw
// more than twice its reserve, and on every write below that; a filler that takes the last
// 150 MiB faster than 100 ms (tmpfs does) could slip under that, as only another writer can.
// So the first step leaves 96 MiB, and the second waits until faxhook saw that.
func (e *env) fill(dir string, keep int64) string {
	t := e.t
	t.Helper()
	path := spacetest.Fill(t, dir, 96<<20, "filler-1")
	waitFor(t, 20*time.Second, "faxhook to see less than twice its reserve free", func() bool {
		v, ok := e.metric("faxhook_storage_free_bytes")
		return ok && v > 0 && v < 128<<20
	})
	t.Cleanup(func() { os.Remove(path) })
	return spacetest.Fill(t, dir, keep, "filler")
}

// waitFor polls cond until it holds, failing the test after timeout.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// delivered reports whether the receiver accepted a webhook for fax id.
func (e *env) delivered(id int64) bool {
	for _, d := range e.rcv.Deliveries() {
		if d.Status == 200 && d.Verified && parseFax(e.t, d).ID == id {
			return true
		}
	}
	return false
}

// attempted reports whether a webhook for fax id reached the receiver, accepted or not.
func (e *env) attempted(id int64) bool {
	for _, d := range e.rcv.Deliveries() {
		if parseFax(e.t, d).ID == id {
			return true
		}
	}
	return false
}

// proxies sends a fax through Caddy and follows it to its end: the fax API works.
func (e *env) proxies(ctx context.Context, to string) int64 {
	e.t.Helper()
	id, err := e.client.Send(ctx, harness.SendOptions{To: []string{to}, File: faxapp.PDF(1)})
	if err != nil {
		e.t.Fatalf("sending a fax through Caddy: %v\ncaddy log:\n%s", err, e.caddy.Tail(30))
	}
	if _, err := e.client.WaitDone(ctx, id, 30*time.Millisecond); err != nil {
		e.t.Fatalf("following fax %d through Caddy: %v", id, err)
	}
	return id
}

// diskEnv starts Caddy with its storage on a fresh tmpfs; the receiver refuses webhooks while
// refuse is set.
func diskEnv(t *testing.T, refuse *atomic.Bool) (*env, string) {
	mnt := mountTmpfs(t)
	respond := func(receiver.Delivery) int {
		if refuse.Load() {
			return 503
		}
		return 0
	}
	// Retries every 600 ms (100 entries, the most retry_schedule takes): the refused webhooks stay
	// pending, not dead, for the test's length.
	ladder := strings.TrimSpace(strings.Repeat("600ms ", 100))
	e := newEnvAt(t, respond, "sent_url RCV/sent\n\t\tsync_writes off\n\t\tretry_schedule "+ladder, filepath.Join(mnt, "storage"))
	t.Cleanup(func() { // runs before newEnv's, which shows only the log's tail (a crash's last goroutines)
		if b, _ := os.ReadFile(e.caddy.Log); t.Failed() {
			if i := strings.Index(string(b), "fatal error"); i >= 0 {
				t.Logf("Caddy crashed:\n%s", b[i:min(len(b), i+600)])
			}
		}
	})
	return e, mnt
}

func TestStorageFullKeepsProxying(t *testing.T) {
	var refuse atomic.Bool
	refuse.Store(true)
	e, mnt := diskEnv(t, &refuse)
	ctx := ctxT(t, 90*time.Second)

	// Recorded before the disk fills: its webhook is refused for now, so its job stays pending.
	before := e.proxies(ctx, "+15550300000")
	waitFor(t, 20*time.Second, "a first (refused) attempt of the earlier fax's webhook", func() bool { return e.attempted(before) })

	filler := e.fill(mnt, keep)
	// The fax API keeps working while faxhook cannot record: traffic that, recorded, would
	// need new pages of Badger's logs.
	refuse.Store(false)
	e.proxyWhileFull(ctx)
	if !strings.Contains(e.caddy.Tail(200), "short of free space") {
		t.Errorf("no log line says the storage is short of free space:\n%s", e.caddy.Tail(30))
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	e.waitDegraded(0)
	waitFor(t, 30*time.Second, "the webhook of the fax recorded before the disk filled", func() bool { return e.delivered(before) })
	after := e.proxies(ctx, "+15550300000")
	waitFor(t, 30*time.Second, "the webhook of a fax sent after space returned", func() bool { return e.delivered(after) })
	if !strings.Contains(e.caddy.Tail(400), "free space again") {
		t.Errorf("no log line says the storage has space again")
	}
}

// proxyWhileFull sends faxes through Caddy, which must proxy them although faxhook cannot record
// them (recorded, they would need new pages of Badger's logs), then waits for faxhook to report
// its storage degraded.
func (e *env) proxyWhileFull(ctx context.Context) {
	e.t.Helper()
	for i := range 20 {
		e.proxies(ctx, fmt.Sprintf("+155503100%02d", i))
	}
	e.waitDegraded(1)
}

// waitDegraded waits until faxhook_storage_degraded is v, then checks that the admin API's
// stats say the same.
func (e *env) waitDegraded(v float64) {
	e.t.Helper()
	waitFor(e.t, 20*time.Second, fmt.Sprintf("faxhook_storage_degraded %v", v), func() bool {
		got, ok := e.metric("faxhook_storage_degraded")
		return ok && got == v
	})
	resp, err := http.Get("http://" + e.admin + "/faxhook/stats")
	if err != nil {
		e.t.Fatalf("GET /faxhook/stats: %v", err)
	}
	defer resp.Body.Close()
	var st struct {
		Degraded *bool `json:"storage_degraded"`
		Free     int64 `json:"storage_free_bytes"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil || resp.StatusCode != http.StatusOK {
		e.t.Fatalf("GET /faxhook/stats: status %d, %v", resp.StatusCode, err)
	}
	if st.Degraded == nil || *st.Degraded != (v == 1) || st.Free <= 0 {
		e.t.Errorf("GET /faxhook/stats while faxhook_storage_degraded is %v: storage_degraded %v, storage_free_bytes %d", v, st.Degraded, st.Free)
	}
}

func TestStartOnFullDisk(t *testing.T) {
	var refuse atomic.Bool
	refuse.Store(true)
	e, mnt := diskEnv(t, &refuse)
	ctx := ctxT(t, 90*time.Second)

	before := e.proxies(ctx, "+15550300000")
	waitFor(t, 20*time.Second, "a first (refused) attempt of the earlier fax's webhook", func() bool { return e.attempted(before) })
	// A crash, not a stop: the job is in Badger's memtable log, which the next open replays and
	// flushes (a table file written through a memory map, as large as the log).
	e.caddy.Kill()

	filler := spacetest.Fill(t, mnt, keep, "filler") // nothing writes while Caddy is down
	if err := e.caddy.Start(); err != nil {
		t.Fatalf("Caddy did not start on a full disk: %v", err)
	}
	refuse.Store(false)
	e.proxyWhileFull(ctx)
	if !strings.Contains(e.caddy.Tail(200), "short of free space; opening it once space returns") {
		t.Errorf("no log line says the storage opens once space returns:\n%s", e.caddy.Tail(30))
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	e.waitDegraded(0)
	if !strings.Contains(e.caddy.Tail(400), "opened faxhook storage: it has space again") {
		t.Errorf("no log line says the storage opened")
	}
	waitFor(t, 30*time.Second, "the webhook of the fax recorded before the crash", func() bool { return e.delivered(before) })
	after := e.proxies(ctx, "+15550300000")
	waitFor(t, 30*time.Second, "the webhook of a fax sent after space returned", func() bool { return e.delivered(after) })
}
