package module

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	zapobserver "go.uber.org/zap/zaptest/observer"

	"github.com/faxhook/caddy-faxhook/module/profile"
)

// Issue 18, gap 3: a listing of received faxes that the service refuses (400) backs off the
// listing only; the faxes in flight are still asked about every interval.
func TestRefusedListingDoesNotSlowStatusPolling(t *testing.T) {
	var status, lists atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/api/jobs/job-7":
			status.Add(1)
			w.Write([]byte(`{"job":{"job_id":"job-7","state":"RUNNING","kind":"out"}}`))
		case "/api/jobs":
			lists.Add(1)
			http.Error(w, `{"error":"unknown query parameter kind"}`, http.StatusBadRequest)
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	prof := testMapping(t)
	const interval = 20 * time.Millisecond
	e := newTestEngine(t, settings{poll: &pollSettings{upstream: srv.URL, interval: interval, concurrency: 1},
		profile: prof, maxFileSize: 1 << 20})
	sent, _ := prof.Faxes(profile.RouteSend, []byte(`{"job_id":"job-7"}`))
	record(t, e, &Observation{Faxes: sent})
	e.poll.start()
	time.Sleep(50 * interval)
	e.once.Do(func() { close(e.stop) })
	e.poll.wait()
	// Backing the whole loop off doubles the wait per failed round: 20+40+80+160+320+640 ms
	// hold only 5 rounds in a second. Without it, about 50 rounds ask about the fax.
	if n := status.Load(); n < 20 {
		t.Errorf("the fax in flight was asked about %d times in %v (interval %v); the refused listing slowed status polling", n, 50*interval, interval)
	}
	if n, s := lists.Load(), status.Load(); n >= s/2 {
		t.Errorf("the refused listing was tried %d times beside %d status requests; it should back off", n, s)
	}
}

// Issue 18, gap 5: a mapping that does not fit the service's JSON is seen at the default log
// level, once per distinct error, and counted.
func TestMappingErrorsLoggedOnceAndCounted(t *testing.T) {
	resetMappingErrors(t, time.Now)
	core, logs := zapobserver.New(zapcore.InfoLevel)
	log := zap.New(core)
	ob := newObserver(testMapping(t))
	const metric = "mapping_error"
	before := testutil.ToFloat64(metricCaptureSkipped.WithLabelValues(metric))
	parse := func(state string) {
		ob.parse(&Capture{Route: profile.RouteStatus, Path: "/api/jobs/job-9", FaxID: "job-9",
			Body: []byte(`{"job":{"job_id":"job-9","state":"` + state + `","kind":"out"}}`)}, log)
	}
	parse("PAUSED")
	parse("PAUSED")
	parse("PAUSED")
	parse("HELD")
	if d := testutil.ToFloat64(metricCaptureSkipped.WithLabelValues(metric)) - before; d != 4 {
		t.Errorf("capture_skipped_total{reason=%q} rose by %v, want 4", metric, d)
	}
	var warned []string
	for _, e := range logs.All() {
		if e.Level >= zapcore.InfoLevel {
			warned = append(warned, e.ContextMap()["error"].(string))
		}
	}
	if len(warned) != 2 || !strings.Contains(warned[0], "PAUSED") || !strings.Contains(warned[1], "HELD") ||
		!strings.Contains(warned[0], "fields.status") {
		t.Fatalf("logged at Info or above: %q; want each distinct mapping error once, naming the field", warned)
	}
}

// resetMappingErrors forgets the mapping errors logged so far and sets the clock, until the test
// ends.
func resetMappingErrors(t *testing.T, now func() time.Time) {
	me := &mappingErrors
	me.mu.Lock()
	defer me.mu.Unlock()
	me.seen, me.last, me.now = map[string]struct{}{}, time.Time{}, now
	t.Cleanup(func() {
		me.mu.Lock()
		defer me.mu.Unlock()
		me.seen, me.last, me.now = map[string]struct{}{}, time.Time{}, time.Now
	})
}

// Past maxDistinctMappingErrors distinct errors, at most one more is logged per minute.
func TestMappingErrorsBounded(t *testing.T) {
	clock := time.Date(2026, 12, 5, 3, 0, 0, 0, time.UTC)
	resetMappingErrors(t, func() time.Time { return clock })
	core, logs := zapobserver.New(zapcore.InfoLevel)
	log := zap.New(core)
	report := func(i int) {
		reportMappingError(log, "test", fmt.Errorf("mapping: fax %d: %w", i, profile.ErrSkipped))
	}
	for i := range maxDistinctMappingErrors {
		report(i)
		report(i)
	}
	if n := logs.Len(); n != maxDistinctMappingErrors {
		t.Fatalf("%d lines for %d distinct errors, each twice", n, maxDistinctMappingErrors)
	}
	report(1000) // past the bound: logged, the first this minute
	report(1001)
	report(1002)
	if n := logs.Len(); n != maxDistinctMappingErrors+1 {
		t.Fatalf("%d lines past the bound, want one more", n-maxDistinctMappingErrors)
	}
	clock = clock.Add(mappingErrorEvery)
	report(1003)
	if n := logs.Len(); n != maxDistinctMappingErrors+2 {
		t.Fatalf("a minute later: %d lines past the bound, want 2", n-maxDistinctMappingErrors)
	}
	// Other errors (no fax data, e.g. an error answer) stay at DEBUG.
	reportMappingError(log, "test", fmt.Errorf("mapping: %w", profile.ErrNoObjects))
	if n := logs.Len(); n != maxDistinctMappingErrors+2 {
		t.Fatalf("an error without skipped faxes was logged at INFO or above")
	}
}
