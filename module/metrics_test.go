package module

import (
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/faxhook/caddy-faxhook/module/profile/fax"
	"github.com/faxhook/caddy-faxhook/queue"
)

// gather returns every sample of reg as name{label="value",…} → value; histograms give their
// sample count as name_count{…}.
func gather(t *testing.T, reg prometheus.Gatherer) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gathering: %v", err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			sort.Strings(labels)
			key := "{" + strings.Join(labels, ",") + "}"
			switch {
			case m.GetCounter() != nil:
				out[mf.GetName()+key] = m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				out[mf.GetName()+key] = m.GetGauge().GetValue()
			case m.GetHistogram() != nil:
				out[mf.GetName()+"_count"+key] = float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return out
}

func TestMetricsAfterDeliveredAndDeadEvents(t *testing.T) {
	reg := prometheus.NewPedanticRegistry() // what ctx.GetMetricsRegistry() is
	if err := registerMetrics(reg); err != nil {
		t.Fatal(err)
	}
	before := gather(t, reg)

	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/fail" {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	t.Cleanup(srv.Close)
	e := startEngine(t, settings{schedule: []time.Duration{10 * time.Millisecond}, timeout: 5 * time.Second})
	completeFax(t, e, 201, srv.URL+"/ok")
	completeFax(t, e, 202, srv.URL+"/fail")
	waitState(t, e, jobOf(t, e, 201).ID, queue.StateDelivered)
	waitState(t, e, jobOf(t, e, 202).ID, queue.StateDead)

	counters := map[string]float64{
		`faxhook_events_total{event_type=fax_completed}`:           2,
		`faxhook_events_total{event_type=transmitting_page}`:       0,
		`faxhook_deliveries_total{outcome=delivered,scheme=http}`:  1,
		`faxhook_deliveries_total{outcome=retry,scheme=http}`:      1, // the dead job's first attempt
		`faxhook_deliveries_total{outcome=dead,scheme=http}`:       1,
		`faxhook_deliveries_total{outcome=delivered,scheme=https}`: 0,
		`faxhook_attempt_duration_seconds_count{scheme=http}`:      3,
		`faxhook_event_delivery_seconds_count{scheme=http}`:        1, // the delivered job only
		`faxhook_capture_skipped_total{reason=too_large}`:          0,
		`faxhook_poller_errors_total{}`:                            0,
	}
	gauges := map[string]float64{
		`faxhook_jobs{state=pending}`:          0,
		`faxhook_jobs{state=waiting}`:          0,
		`faxhook_jobs{state=leased}`:           0,
		`faxhook_jobs{state=dead}`:             1,
		`faxhook_oldest_pending_age_seconds{}`: 0,
	}
	// The dispatcher counts an attempt after storing its outcome, so a job can show its final
	// state a moment before its count: wait for the counts (and fail on what they still lack).
	var after map[string]float64
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		metricStore.invalidate()
		after = gather(t, reg)
		if countersRose(before, after, counters) || time.Now().After(deadline) {
			break
		}
	}
	for k, want := range counters {
		if _, ok := after[k]; !ok {
			t.Errorf("%s missing", k)
		}
		if got := after[k] - before[k]; got != want {
			t.Errorf("%s rose by %v, want %v", k, got, want)
		}
	}
	for k, want := range gauges {
		if got, ok := after[k]; !ok || got != want {
			t.Errorf("%s = %v (present %v), want %v", k, got, ok, want)
		}
	}

	// Gauges are cached between scans: a new job shows after the cache expires (or is dropped).
	enqueue := func(id string, created time.Time) {
		j := &queue.Job{ID: id, EventID: id, Meta: metaOf(300, fax.EventFaxCompleted), URL: "https://hooks.example.com/x",
			CreatedAt: created, DueAt: time.Now().Add(time.Hour)}
		if err := e.store.Update(func(tx queue.Tx) error { _, err := tx.Enqueue(j); return err }); err != nil {
			t.Fatal(err)
		}
	}
	enqueue("later-1", time.Now().Add(-time.Hour))
	if g := gather(t, reg); g[`faxhook_jobs{state=pending}`] != 0 {
		t.Fatalf("pending = %v within the cache time, want the cached 0", g[`faxhook_jobs{state=pending}`])
	}
	metricStore.invalidate()
	g := gather(t, reg)
	if g[`faxhook_jobs{state=pending}`] != 1 || g[`faxhook_oldest_pending_age_seconds{}`] < 3600 {
		t.Fatalf("after a rescan: pending %v, oldest age %v", g[`faxhook_jobs{state=pending}`], g[`faxhook_oldest_pending_age_seconds{}`])
	}

	// Capture skips come from the handler, through the App.
	var a *App
	a.CaptureSkipped("too_large")
	a.CaptureSkipped("something new")
	g = gather(t, reg)
	if d := g[`faxhook_capture_skipped_total{reason=too_large}`] - before[`faxhook_capture_skipped_total{reason=too_large}`]; d != 1 {
		t.Fatalf("too_large delta %v", d)
	}
	if g[`faxhook_capture_skipped_total{reason=other}`] < 1 {
		t.Fatal("an unknown reason was not counted as other")
	}
}

// countersRose reports whether every counter in want rose from before to after by exactly its value.
func countersRose(before, after, want map[string]float64) bool {
	for k, d := range want {
		if after[k]-before[k] != d {
			return false
		}
	}
	return true
}

func TestMetricsSurviveReRegistration(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	for i := 0; i < 2; i++ {
		if err := registerMetrics(reg); err != nil {
			t.Fatalf("registration %d: %v", i+1, err)
		}
	}
	// A reload: the next config's fresh registry gets the same collectors, and the counts go on.
	var a *App
	a.CaptureSkipped("not_json")
	reg2 := prometheus.NewPedanticRegistry()
	if err := registerMetrics(reg2); err != nil {
		t.Fatal(err)
	}
	a.CaptureSkipped("not_json")
	g1, g2 := gather(t, reg), gather(t, reg2)
	k := `faxhook_capture_skipped_total{reason=not_json}`
	if g1[k] < 2 || g1[k] != g2[k] {
		t.Fatalf("%s: %v in the first registry, %v in the second", k, g1[k], g2[k])
	}
	if err := registerMetrics(nil); err != nil {
		t.Fatal(err)
	}
}

func TestMetricLabelsAreBounded(t *testing.T) {
	for in, want := range map[string]string{
		"https://x.example/a": "https", "HTTP://x.example": "http", "mailto:a@b.example": "mailto",
		"ftp://x": "other", "no scheme": "other",
	} {
		if got := schemeLabel(in); got != want {
			t.Errorf("schemeLabel(%q) = %q, want %q", in, got, want)
		}
	}
	if got := oneOf("fax_received", eventTypeLabels); got != "other" {
		t.Errorf("unknown event type labelled %q", got)
	}
}

// The event-to-delivery latency runs from the job's enqueue to the end of its delivering
// attempt, retries included.
func TestEventDeliveryLatency(t *testing.T) {
	sum := func() float64 {
		m := &dto.Metric{}
		if err := metricEventLatency.WithLabelValues("https").(prometheus.Histogram).Write(m); err != nil {
			t.Fatal(err)
		}
		return m.GetHistogram().GetSampleSum()
	}
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	j := &queue.Job{URL: "https://hooks.example.com/x", CreatedAt: t0, State: queue.StateDelivered,
		Attempts: []queue.Attempt{{At: t0.Add(time.Second), Duration: time.Second, Status: 503}, {At: t0.Add(5 * time.Minute), Duration: 2 * time.Second, Status: 200}}}
	before := sum()
	if got := observeOutcome(j); got != outcomeDelivered {
		t.Fatalf("outcome %q", got)
	}
	if d := sum() - before; d != 302 {
		t.Fatalf("latency observed %vs, want 302s (5 min to the last attempt, plus its 2 s)", d)
	}
	j.State = queue.StateDead // not delivered: no latency
	observeOutcome(j)
	if d := sum() - before; d != 302 {
		t.Fatalf("a dead job added %vs of latency", d-302)
	}
}
