package qbench

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/faxhook/caddy-faxhook/module/profile/fax"
	"github.com/faxhook/caddy-faxhook/module/render"
	"github.com/faxhook/caddy-faxhook/queue"
)

// benchToken signs every delivery of the benchmark.
const benchToken = "qbench-webhook-token"

// faxJSON is the fax object of a completed two-recipient fax, as the tracker puts it in the `fax`
// field of a fax_completed webhook (about 900 bytes).
var faxJSON = func() string {
	f := fax.Fax{
		ID: 123456789, Direction: fax.DirectionSent, NumPages: 3, Status: fax.StatusSuccess,
		CreatedAt: "2026-01-01T10:00:00.000000Z", CallerID: fax.Str("+15555550100"),
		FromNumber: fax.Str("+15555550100"), CompletedAt: fax.Str("2026-01-01T10:01:42.000000Z"),
		Cost: 14, Tags: map[string]string{"order": "A-10023", "department": "billing"},
		Recipients: []fax.Recipient{
			{PhoneNumber: "+15555550111", Status: fax.Str(fax.StatusSuccess), CompletedAt: fax.Str("2026-01-01T10:01:12.000000Z"),
				Bitrate: fax.Int(14400), Resolution: fax.Int(8040)},
			{PhoneNumber: "+15555550122", Status: fax.Str(fax.StatusSuccess), RetryCount: 1,
				CompletedAt: fax.Str("2026-01-01T10:01:42.000000Z"), Bitrate: fax.Int(9600), Resolution: fax.Int(8040)},
		},
	}
	b, err := f.JSON()
	if err != nil {
		panic(err)
	}
	return string(b)
}()

// makeJob returns the fax_completed job the tracker would enqueue for fax faxID to url, rendered
// as the tracker renders it: stable ID, its own chain, due at due.
func makeJob(faxID int64, url string, created, due time.Time) *queue.Job {
	ev := render.Event{FaxID: faxID, Type: fax.EventFaxCompleted, FaxJSON: faxJSON}
	payload, err := ev.Payload(url, ev.Fields())
	if err != nil {
		panic(fmt.Sprintf("rendering the benchmark's job: %v", err)) // a fixed, valid fax object
	}
	eventID := ev.ID()
	sum := sha256.Sum256([]byte(eventID + "\x00" + url))
	return &queue.Job{
		ID: hex.EncodeToString(sum[:12]), EventID: eventID, Meta: ev.Meta(), URL: url, Payload: payload,
		CreatedAt: created, DueAt: due, Chain: strconv.FormatInt(faxID, 10) + "\x00" + url,
	}
}

// rawOptions are the Badger options queue.OpenBadger uses, for the raw-Badger baseline.
func rawOptions(dir string, syncWrites bool) badger.Options {
	return badger.DefaultOptions(dir).
		WithSyncWrites(syncWrites).
		WithLogger(nil).
		WithMemTableSize(16 << 20).
		WithNumMemtables(2).
		WithBlockCacheSize(16 << 20).
		WithIndexCacheSize(16 << 20).
		WithValueLogFileSize(64 << 20).
		WithNumCompactors(2).
		WithMetricsEnabled(false)
}

// receiver is a loopback webhook receiver that reads each body, answers 200 and reports the
// event ID and arrival time of each delivery.
type receiver struct {
	srv   *httptest.Server
	hang  bool          // hold requests until the client gives up or quit closes
	quit  chan struct{} // closed before the server is
	onHit func(eventID string, at time.Time)
	held  *atomic.Int64 // if set, counts requests held until the client gave up
	once  sync.Once
}

func newReceiver(hang bool, onHit func(eventID string, at time.Time)) *receiver {
	r := &receiver{hang: hang, quit: make(chan struct{}), onHit: onHit}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		at := time.Now()
		_, _ = io.Copy(io.Discard, req.Body)
		if r.hang {
			select {
			case <-req.Context().Done():
				if r.held != nil {
					r.held.Add(1)
				}
			case <-r.quit:
			}
			return
		}
		if r.onHit != nil {
			r.onHit(req.Header.Get("X-Faxhook-Event-Id"), at)
		}
		w.WriteHeader(http.StatusOK)
	}))
	return r
}

// URL is the receiver's webhook URL.
func (r *receiver) URL() string { return r.srv.URL + "/webhooks/fax" }

// Close releases held requests and shuts the server down.
func (r *receiver) Close() {
	r.once.Do(func() { close(r.quit) })
	r.srv.CloseClientConnections()
	r.srv.Close()
}

// procStatusKB returns a "VmHWM"-style field of /proc/self/status in KiB, 0 if unavailable.
func procStatusKB(field string) int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok || name != field {
			continue
		}
		n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
		return n
	}
	return 0
}

// tempDir makes a directory under parent (os.TempDir() if empty) and returns it with a function
// that removes it.
func tempDir(parent, pattern string) (string, func(), error) {
	dir, err := os.MkdirTemp(parent, pattern)
	if err != nil {
		return "", nil, fmt.Errorf("making a work directory: %w", err)
	}
	return dir, func() { _ = os.RemoveAll(dir) }, nil
}

// idOf spreads sequence numbers over the key space the way the tracker's hashed job IDs are.
func idOf(i uint64) string {
	x := i + 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	x ^= x >> 31
	return fmt.Sprintf("%016x%08x", x, uint32(i))
}
