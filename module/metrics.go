package module

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/faxhook/caddy-faxhook/module/profile/fax"
	"github.com/faxhook/caddy-faxhook/module/render"
	"github.com/faxhook/caddy-faxhook/queue"
)

// Prometheus metrics. The collectors are built once per process and registered into the
// registry of every config load (each load gets a fresh registry from ctx.GetMetricsRegistry),
// so counters keep counting across reloads. Every label takes its values from a fixed set;
// anything unexpected is counted as "other".
var (
	metricEvents = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "faxhook",
		Name:      "events_total",
		Help:      "Webhook events enqueued (one per event, however many URLs it goes to), by event type.",
	}, []string{"event_type"})

	metricDeliveries = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "faxhook",
		Name:      "deliveries_total",
		Help:      "Outcomes of delivery attempts: delivered, retry (failed, another attempt is scheduled) or dead (failed, no attempt left), by URL scheme.",
	}, []string{"outcome", "scheme"})

	metricAttemptDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "faxhook",
		Name:      "attempt_duration_seconds",
		Help:      "Duration of delivery attempts, by URL scheme.",
		Buckets:   []float64{0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60},
	}, []string{"scheme"})

	metricEventLatency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "faxhook",
		Name:      "event_delivery_seconds",
		Help:      "Time from a fax state change being recorded (its webhook enqueued) to the webhook's successful delivery, retries included, by URL scheme.",
		Buckets:   []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 6 * 3600, 24 * 3600},
	}, []string{"scheme"})

	metricAccountDeliveries = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "faxhook",
		Name:      "account_deliveries_total",
		Help:      "Delivery attempts of the webhooks of accounts configured with metrics on, by account (API key) and outcome (delivered, retry, dead).",
	}, []string{"account", "outcome"})

	metricPollerErrors = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "faxhook",
		Name:      "poller_errors_total",
		Help:      "Poll rounds against the fax service that failed.",
	})

	metricPollerRequests = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "faxhook",
		Name:      "poller_requests_total",
		Help:      "Status requests the poller made to the fax service about faxes in flight (capped by the poll block's max_rate per second).",
	})

	metricCaptureSkipped = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "faxhook",
		Name:      "capture_skipped_total",
		Help:      "Fax API responses the handler did not parse, by reason (too_large, not_json, decode_error, backlog_full: the observation worker's queue was full; mapping_error: a successful response whose faxes were skipped because a value did not fit the mapping, or that held no fax object where the mapping says; counted per response, by the handler and the poller).",
	}, []string{"reason"})

	metricEventsCapped = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "faxhook",
		Name:      "fax_events_capped_total",
		Help:      "Observations of a fax whose inflight events were left out because the fax was over a bound, by reason: recipients (max_recipients), events (max_events) or bytes (1 MiB of event payload). The fax's fax_completed is still sent.",
	}, []string{"reason"})

	metricRejected = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "faxhook",
		Name:      "observations_rejected_total",
		Help:      "Observed faxes or numbers that could not be recorded (a corrupt stored record, or too big for one transaction) and were set aside; others recorded with them are not affected.",
	})

	metricStore = newStoreCollector(runningEngines, 5*time.Second)

	// dispatchersRunning counts the dispatchers running in this process: one per storage
	// directory, however many configs share it.
	dispatchersRunning atomic.Int64
	metricDispatchers  = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: "faxhook", Name: "dispatchers_running",
		Help: "Webhook dispatchers running in this process (one per storage directory, across reloads).",
	}, func() float64 { return float64(dispatchersRunning.Load()) })

	// allCollectors is what registerMetrics registers.
	allCollectors = []prometheus.Collector{
		metricEvents, metricDeliveries, metricAccountDeliveries, metricAttemptDuration, metricEventLatency, metricPollerErrors, metricPollerRequests, metricCaptureSkipped, metricStore,
		metricDispatchers, metricEventsCapped, metricRejected,
	}
)

// Label values.
const (
	outcomeDelivered = "delivered"
	outcomeRetry     = "retry"
	outcomeDead      = "dead"
	labelOther       = "other"
)

var (
	eventTypeLabels  = []string{fax.EventFaxCompleted, fax.EventTransmittingPage, fax.EventRetryScheduled}
	schemeLabels     = []string{"http", "https", "mailto"}
	outcomeLabels    = []string{outcomeDelivered, outcomeRetry, outcomeDead}
	skipReasonLabels = []string{"too_large", "not_json", "decode_error", "backlog_full", reasonMappingError}
	capReasonLabels  = []string{capRecipients, capEvents, capBytes}
	// gaugeStates are the job states exported by faxhook_jobs. Delivered jobs are left out: their
	// number only grows until purged and says nothing about health.
	gaugeStates = []string{queue.StatePending, queue.StateWaiting, queue.StateLeased, queue.StateDead}
)

func init() {
	// Create the fixed label combinations up front, so that every series exists (at 0) from the
	// first scrape and rate() works from the first event.
	for _, t := range eventTypeLabels {
		metricEvents.WithLabelValues(t)
	}
	for _, o := range outcomeLabels {
		for _, s := range schemeLabels {
			metricDeliveries.WithLabelValues(o, s)
		}
	}
	for _, s := range schemeLabels {
		metricAttemptDuration.WithLabelValues(s)
		metricEventLatency.WithLabelValues(s)
	}
	for _, r := range skipReasonLabels {
		metricCaptureSkipped.WithLabelValues(r)
	}
	for _, r := range capReasonLabels {
		metricEventsCapped.WithLabelValues(r)
	}
}

// registerMetrics registers faxhook's collectors into reg, tolerating collectors that are
// registered already. A nil reg (a context without metrics, as in tests) is a no-op.
func registerMetrics(reg *prometheus.Registry) error {
	if reg == nil {
		return nil
	}
	for _, c := range allCollectors {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				continue
			}
			return fmt.Errorf("registering faxhook metrics: %w", err)
		}
	}
	return nil
}

// CaptureSkipped counts a fax API response that the HTTP handler did not parse. reason is one of
// "too_large", "not_json" or "decode_error"; any other value is counted as "other". It is safe to
// call on a nil App and from any goroutine.
func (*App) CaptureSkipped(reason string) {
	metricCaptureSkipped.WithLabelValues(oneOf(reason, skipReasonLabels)).Inc()
}

// countEvents counts the events of freshly enqueued jobs: one per event ID, since one event goes
// to every URL as a job of its own.
func countEvents(jobs []*queue.Job) {
	if len(jobs) == 0 {
		return
	}
	seen := make(map[string]struct{}, len(jobs))
	for _, j := range jobs {
		if _, ok := seen[j.EventID]; ok {
			continue
		}
		seen[j.EventID] = struct{}{}
		metricEvents.WithLabelValues(oneOf(j.Meta.Get(render.MetaEventType), eventTypeLabels)).Inc()
	}
}

// observeOutcome counts the outcome of one delivery attempt of j, whose state is already the
// one the attempt led to, and returns the outcome's label.
func observeOutcome(j *queue.Job) string {
	scheme := schemeLabel(j.URL)
	outcome := outcomeRetry
	switch j.State {
	case queue.StateDelivered:
		outcome = outcomeDelivered
	case queue.StateDead:
		outcome = outcomeDead
	}
	metricDeliveries.WithLabelValues(outcome, scheme).Inc()
	n := len(j.Attempts)
	if n > 0 {
		metricAttemptDuration.WithLabelValues(scheme).Observe(j.Attempts[n-1].Duration.Seconds())
	}
	if outcome == outcomeDelivered && n > 0 && !j.CreatedAt.IsZero() {
		// From the enqueue to the end of the delivering attempt, on the attempt's own clock.
		last := j.Attempts[n-1]
		metricEventLatency.WithLabelValues(scheme).Observe(max(0, last.At.Add(last.Duration).Sub(j.CreatedAt).Seconds()))
	}
	return outcome
}

// schemeLabel is the URL scheme of a webhook URL as a bounded label value.
func schemeLabel(rawURL string) string {
	scheme, _, ok := strings.Cut(rawURL, ":")
	if !ok {
		return labelOther
	}
	return oneOf(strings.ToLower(scheme), schemeLabels)
}

// oneOf returns v if it is in allowed, else "other".
func oneOf(v string, allowed []string) string {
	for _, a := range allowed {
		if v == a {
			return v
		}
	}
	return labelOther
}

// runningEngines lists the engines in the package pool, by storage directory.
func runningEngines() map[string]*engine {
	m := map[string]*engine{}
	engines.Range(func(key, value any) bool {
		dir, ok1 := key.(string)
		e, ok2 := value.(*engine)
		if ok1 && ok2 && e != nil {
			m[dir] = e
		}
		return true
	})
	return m
}

// jobStats is a count of jobs by state.
type jobStats struct {
	// Counts holds the number of jobs in each state.
	Counts map[string]int
	// OldestUnfinished is the CreatedAt of the oldest job not yet delivered or dead; zero if none.
	OldestUnfinished time.Time
}

// jobStats counts the jobs of the store by state, a pending job the dispatcher holds as leased.
//
// Cost: the counts come from the store's counters (Tx.Counts), read without a scan; the age of
// the oldest unfinished job needs the heads of the pending and waiting jobs (Tx.List), never
// those of delivered or dead jobs kept until purged, and no bodies. It runs only at scrape time
// behind storeCollector's cache and on GET /faxhook/stats, never in the request or delivery path.
func (d *delivery) jobStats() (jobStats, error) {
	s := jobStats{Counts: map[string]int{
		queue.StatePending: 0, queue.StateWaiting: 0, queue.StateLeased: 0, queue.StateDead: 0, queue.StateDelivered: 0,
	}}
	leases := d.leases()
	err := d.store.View(func(tx queue.Tx) error {
		counts, err := tx.Counts()
		if err != nil {
			return err
		}
		for state, n := range counts {
			s.Counts[state] = int(n)
		}
		for _, state := range []string{queue.StatePending, queue.StateWaiting} {
			err := listAll(tx, queue.ListQuery{State: state}, func(j *queue.Job) bool {
				if _, ok := leases[j.ID]; ok && state == queue.StatePending {
					// Shown as leased while the dispatcher holds it (see asLeased).
					s.Counts[queue.StatePending]--
					s.Counts[queue.StateLeased]++
				}
				if s.OldestUnfinished.IsZero() || j.CreatedAt.Before(s.OldestUnfinished) {
					s.OldestUnfinished = j.CreatedAt
				}
				return true
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return jobStats{}, err // the callers say which storage
	}
	return s, nil
}

// listAll calls fn for every job (head) the listing q selects, page after page, until fn
// returns false.
func listAll(tx queue.Tx, q queue.ListQuery, fn func(*queue.Job) bool) error {
	for {
		pg, err := tx.List(q)
		if err != nil {
			return err
		}
		for _, j := range pg.Jobs {
			if !fn(j) {
				return nil
			}
		}
		if pg.Next == "" {
			return nil
		}
		q.After = pg.Next
	}
}

// storeCollector exports the gauges that need a store scan, faxhook_jobs{state} and
// faxhook_oldest_pending_age_seconds. It scans lazily, at scrape time, and caches the result for
// ttl (longer when a scan is slow: ten times the last scan's duration), so frequent or
// concurrent scrapes cost one scan. With several storages open (briefly, during a reload that
// changes the storage directory) counts are summed and the oldest age is the largest.
type storeCollector struct {
	jobs   *prometheus.Desc
	oldest *prometheus.Desc
	source func() map[string]*engine
	ttl    time.Duration

	mu     sync.Mutex
	at     time.Time // when snap was taken; zero: no valid snapshot
	hold   time.Duration
	snap   jobStats
	active bool // false when no engine was running at the last scan
}

func newStoreCollector(source func() map[string]*engine, ttl time.Duration) *storeCollector {
	return &storeCollector{
		jobs: prometheus.NewDesc("faxhook_jobs", "Webhook jobs in the store, by state (pending, waiting, leased, dead).",
			[]string{"state"}, nil),
		oldest: prometheus.NewDesc("faxhook_oldest_pending_age_seconds",
			"Age of the oldest webhook job not yet delivered or dead (pending, waiting or leased); 0 when there is none.",
			nil, nil),
		source: source,
		ttl:    ttl,
	}
}

// Describe implements prometheus.Collector.
func (c *storeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.jobs
	ch <- c.oldest
}

// Collect implements prometheus.Collector.
func (c *storeCollector) Collect(ch chan<- prometheus.Metric) {
	snap, ok := c.snapshot(time.Now())
	if !ok {
		return
	}
	for _, st := range gaugeStates {
		ch <- prometheus.MustNewConstMetric(c.jobs, prometheus.GaugeValue, float64(snap.Counts[st]), st)
	}
	age := 0.0
	if !snap.OldestUnfinished.IsZero() {
		age = max(0, time.Since(snap.OldestUnfinished).Seconds())
	}
	ch <- prometheus.MustNewConstMetric(c.oldest, prometheus.GaugeValue, age)
}

// snapshot returns the cached counts, rescanning when they are older than the hold time. ok is
// false when no engine is running (or none could be read).
func (c *storeCollector) snapshot(now time.Time) (jobStats, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.at.IsZero() && now.Sub(c.at) < max(c.ttl, c.hold) {
		return c.snap, c.active
	}
	start := time.Now()
	total := jobStats{Counts: map[string]int{}}
	active := false
	for dir, e := range c.source() {
		s, err := e.delivery.jobStats()
		if err != nil {
			if !errors.Is(err, queue.ErrClosed) && !errors.Is(err, queue.ErrNoSpace) { // not open yet: storage_degraded says why
				caddy.Log().Named("faxhook.metrics").Warn("counting jobs for metrics", zap.String("storage", dir), zap.Error(err))
			}
			continue
		}
		active = true
		for st, n := range s.Counts {
			total.Counts[st] += n
		}
		if !s.OldestUnfinished.IsZero() && (total.OldestUnfinished.IsZero() || s.OldestUnfinished.Before(total.OldestUnfinished)) {
			total.OldestUnfinished = s.OldestUnfinished
		}
	}
	c.at, c.hold, c.snap, c.active = now, 10*time.Since(start), total, active
	return total, active
}

// invalidate drops the cached snapshot, so the next scrape scans.
func (c *storeCollector) invalidate() {
	c.mu.Lock()
	c.at = time.Time{}
	c.mu.Unlock()
}

// metricDestinationsDown is faxhook_destination_down: how many destinations this process holds
// down (see HealthConfig). One series, without a per-destination label, so that its
// cardinality stays bounded; GET /faxhook/destinations names them.
var metricDestinationsDown = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
	Namespace: "faxhook", Name: "destination_down",
	Help: "Webhook destinations (scheme, host and port) that this process holds down after consecutive failed attempts: they get one probe attempt per probe interval until one succeeds.",
}, destinationsDown)

func init() { allCollectors = append(allCollectors, metricDestinationsDown) }
