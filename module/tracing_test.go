package module

import (
	"context"
	"strconv"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/faxhook/caddy-faxhook/module/profile"
	"github.com/faxhook/caddy-faxhook/module/profile/fax"
	"github.com/faxhook/caddy-faxhook/module/render"
	"github.com/faxhook/caddy-faxhook/queue"
)

const (
	sendTrace   = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	statusTrace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
)

// jobOf returns the one job of fax id, failing unless there is exactly one.
func onlyJobOf(t *testing.T, e *engine, id int64) *queue.Job {
	t.Helper()
	var found []*queue.Job
	for _, j := range allJobs(t, e) {
		if j.Meta.Get(render.MetaFaxID) == strconv.FormatInt(id, 10) {
			found = append(found, j)
		}
	}
	if len(found) != 1 {
		t.Fatalf("fax %d has %d jobs, want 1", id, len(found))
	}
	return found[0]
}

// The send request's trace context stays with the fax: its fax_completed, revealed later by
// the poller (no request) or by a traced status request (linked), is delivered in that trace;
// a fax no traced request revealed has no trace labels at all.
func TestEventsCarryTheTraceOfTheRequestThatRevealedTheFax(t *testing.T) {
	e := newTestEngine(t, settings{sentURLs: []string{"https://a.example/sent"}})
	now := time.Now()
	send := func(id int64, trace string) *Observation {
		return &Observation{Faxes: []profile.Object{{Fax: fax.Fax{ID: id}}}, TraceParent: trace}
	}
	done := func(id int64, trace string) *Observation {
		return &Observation{Faxes: []profile.Object{obj(id, fax.StatusSuccess, now)}, TraceParent: trace}
	}
	record(t, e, send(1, sendTrace), send(2, sendTrace), send(3, ""), send(4, ""))
	record(t, e, done(1, ""), done(2, statusTrace), done(3, ""), done(4, statusTrace))
	// A traced request that sees fax 3 complete again changes nothing: it has no events to come.
	var before []byte
	e.store.View(func(tx queue.Tx) error { before, _ = tx.State(faxKey(3)); return nil })
	record(t, e, done(3, statusTrace))
	e.store.View(func(tx queue.Tx) error {
		if after, _ := tx.State(faxKey(3)); string(after) != string(before) {
			t.Errorf("a completed fax's record changed on a traced request: %s", after)
		}
		return nil
	})

	for _, tc := range []struct {
		id          int64
		parent, lnk string
	}{
		{1, sendTrace, ""},          // completed by the poller: the send's trace
		{2, sendTrace, statusTrace}, // completed by a traced status request: linked to it
		{3, "", ""},                 // never traced
		{4, statusTrace, ""},        // first traced by its status request
	} {
		j := onlyJobOf(t, e, tc.id)
		if got := j.Meta.Get(labelTraceParent); got != tc.parent {
			t.Errorf("fax %d: traceparent label %q, want %q", tc.id, got, tc.parent)
		}
		if got := j.Meta.Get(labelTraceLink); got != tc.lnk {
			t.Errorf("fax %d: tracelink label %q, want %q", tc.id, got, tc.lnk)
		}
		if tc.parent == "" && len(j.Meta) != len(queue.Labels{{}, {}}) {
			t.Errorf("fax %d: untraced job has labels %+v, want only fax_id and event_type", tc.id, j.Meta)
		}
	}
}

// A send's trace context survives a crash between the send and its recording: the journal
// keeps it.
func TestJournalKeepsTheSendsTrace(t *testing.T) {
	o := &Observation{Faxes: []profile.Object{{Fax: fax.Fax{ID: 9}}}, CallbackURLs: []string{"https://cb.example/"}, TraceParent: sendTrace}
	e, ok := entryOf(o)
	if !ok {
		t.Fatal("a send with a callback URL makes no journal entry")
	}
	if got := e.observation().TraceParent; got != sendTrace {
		t.Fatalf("replayed traceparent %q, want %q", got, sendTrace)
	}
}

// TraceOf takes the traceparent of any span context in the request's context, and the tracer
// provider only of a recording span; an empty context gives neither.
func TestTraceOf(t *testing.T) {
	if tp, prov := TraceOf(context.Background()); tp != "" || prov != nil {
		t.Fatalf("untraced request: %q, %v", tp, prov)
	}
	sdk := sdktrace.NewTracerProvider()
	defer sdk.Shutdown(context.Background())
	ctx, span := sdk.Tracer("test").Start(context.Background(), "request")
	defer span.End()
	tp, prov := TraceOf(ctx)
	if want := "00-" + span.SpanContext().TraceID().String() + "-" + span.SpanContext().SpanID().String() + "-01"; tp != want {
		t.Errorf("traceparent %q, want %q", tp, want)
	}
	if prov != trace.TracerProvider(sdk) {
		t.Errorf("provider %v, want the span's", prov)
	}
	unsampled := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.NeverSample()))
	defer unsampled.Shutdown(context.Background())
	ctx, span2 := unsampled.Tracer("test").Start(context.Background(), "request")
	defer span2.End()
	if tp, prov := TraceOf(ctx); tp == "" || prov != nil {
		t.Errorf("unsampled request: %q, %v; want its traceparent and no provider", tp, prov)
	}

	var h tracerHolder
	h.learn(nil)
	if h.provider() != nil {
		t.Fatal("a nil provider was learned")
	}
	h.learn(sdk)
	h.learn(nil)
	if h.provider() != trace.TracerProvider(sdk) {
		t.Fatal("the learned provider was lost")
	}
}

// BenchmarkTraceOf measures what the handler pays per fax API request to look for a trace:
// nothing allocated on a site without tracing.
func BenchmarkTraceOf(b *testing.B) {
	b.Run("untraced", func(b *testing.B) {
		ctx := context.WithValue(context.Background(), struct{}{}, 1)
		b.ReportAllocs()
		for b.Loop() {
			TraceOf(ctx)
		}
	})
	b.Run("traced", func(b *testing.B) {
		sdk := sdktrace.NewTracerProvider()
		defer sdk.Shutdown(context.Background())
		ctx, span := sdk.Tracer("bench").Start(context.Background(), "request")
		defer span.End()
		b.ReportAllocs()
		for b.Loop() {
			TraceOf(ctx)
		}
	})
}

// A traced job's log entries carry the trace id under Caddy's field name (traceID), so one
// log search finds the request's access log entry and the webhook's delivery entries.
func TestJobLogFieldsNameTheTrace(t *testing.T) {
	traced := &queue.Job{Meta: queue.Labels{{Name: labelTraceParent, Value: sendTrace}}}
	var got string
	for _, f := range jobLogFields(traced) {
		if f.Key == "traceID" {
			got = f.String
		}
	}
	if got != "0af7651916cd43dd8448eb211c80319c" {
		t.Errorf("traceID field %q, want the traceparent's trace id", got)
	}
	for _, tp := range []string{"", "garbage", sendTrace[:54]} {
		for _, f := range jobLogFields(&queue.Job{Meta: queue.Labels{{Name: labelTraceParent, Value: tp}}}) {
			if f.Key == "traceID" {
				t.Errorf("traceparent %q gave a traceID field %q", tp, f.String)
			}
		}
	}
}
