package httpsend

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/faxhook/caddy-faxhook/queue"
)

// Trace contexts of requests that the tests' jobs come from.
const (
	sendTraceParent   = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	statusTraceParent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
)

// headerLog is a receiver that records the traceparent header of every webhook and answers
// each with the next status of answers (200 once they run out).
type headerLog struct {
	mu      sync.Mutex
	got     []string // "" where the header was absent
	present []bool
	answers []int
}

func (h *headerLog) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	_, ok := r.Header[http.CanonicalHeaderKey(HeaderTraceParent)]
	h.got = append(h.got, r.Header.Get(HeaderTraceParent))
	h.present = append(h.present, ok)
	status := 200
	if len(h.answers) > 0 {
		status, h.answers = h.answers[0], h.answers[1:]
	}
	h.mu.Unlock()
	w.WriteHeader(status)
}

func (h *headerLog) headers() ([]string, []bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.got...), append([]bool(nil), h.present...)
}

func tracedJob(url, traceparent, link string) *queue.Job {
	j := newJob(url)
	j.Meta = queue.Labels{{Name: "event_type", Value: "fax_completed"}}
	if traceparent != "" {
		j.Meta = append(j.Meta, queue.Label{Name: LabelTraceParent, Value: traceparent})
	}
	if link != "" {
		j.Meta = append(j.Meta, queue.Label{Name: LabelTraceLink, Value: link})
	}
	return j
}

func newSpanRecorder(t *testing.T) (*tracetest.InMemoryExporter, *sdktrace.TracerProvider) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { tp.Shutdown(context.Background()) })
	return exp, tp
}

// Without a trace context in the job, nothing is traced and no traceparent header goes out,
// even with a tracer provider: that is every webhook of a site without Caddy's tracing.
func TestUntracedJobCarriesNoTraceParent(t *testing.T) {
	rcv := &headerLog{}
	srv := httptest.NewServer(rcv)
	defer srv.Close()
	exp, tp := newSpanRecorder(t)
	for _, transport := range []http.RoundTripper{nil, http.DefaultTransport} {
		s := New(Options{Token: testToken, Transport: transport, TracerProvider: func() trace.TracerProvider { return tp }})
		for _, j := range []*queue.Job{tracedJob(srv.URL, "", ""), tracedJob(srv.URL, "00-not-a-traceparent-01", "")} {
			if res := s.Send(context.Background(), j); res.Err != nil {
				t.Fatal(res.Err)
			}
		}
	}
	got, present := rcv.headers()
	for i := range got {
		if present[i] {
			t.Errorf("webhook %d carried traceparent %q", i, got[i])
		}
	}
	if spans := exp.GetSpans(); len(spans) != 0 {
		t.Errorf("%d spans exported for untraced jobs", len(spans))
	}
}

// A traced job's attempts are spans in the stored trace, children of the stored context,
// linked to the revealing request's, and each webhook carries its own attempt's traceparent.
func TestTracedJobAttemptsAreChildSpans(t *testing.T) {
	for _, tc := range []struct {
		name      string
		transport http.RoundTripper
	}{{"h1", nil}, {"net/http", http.DefaultTransport}} {
		t.Run(tc.name, func(t *testing.T) {
			rcv := &headerLog{answers: []int{500}}
			srv := httptest.NewServer(rcv)
			defer srv.Close()
			exp, tp := newSpanRecorder(t)
			s := New(Options{Token: testToken, Transport: tc.transport,
				TracerProvider: func() trace.TracerProvider { return tp },
				SpanAttributes: func(j *queue.Job) []attribute.KeyValue {
					return []attribute.KeyValue{attribute.String("app.event_type", j.Meta.Get("event_type"))}
				},
				SpanName: func(j *queue.Job) string { return "webhook " + j.Meta.Get("event_type") }})
			j := tracedJob(srv.URL+"/hook", sendTraceParent, statusTraceParent)
			first := s.Send(context.Background(), j)
			if first.Err == nil || first.Status != 500 {
				t.Fatalf("first attempt: %+v, want the receiver's 500", first)
			}
			j.Attempts = append(j.Attempts, queue.Attempt{Status: 500})
			if res := s.Send(context.Background(), j); res.Err != nil {
				t.Fatal(res.Err)
			}

			parent := ParseTraceParent(sendTraceParent)
			spans := exp.GetSpans()
			if len(spans) != 2 {
				t.Fatalf("%d spans, want one per attempt (2)", len(spans))
			}
			got, _ := rcv.headers()
			for i, sp := range spans {
				if sp.Name != "webhook fax_completed" || sp.SpanKind != trace.SpanKindClient {
					t.Errorf("span %d: %q kind %v", i, sp.Name, sp.SpanKind)
				}
				if sp.SpanContext.TraceID() != parent.TraceID() || sp.Parent.SpanID() != parent.SpanID() || !sp.Parent.IsRemote() {
					t.Errorf("span %d: trace %s parent %s, want a child of %s", i, sp.SpanContext.TraceID(), sp.Parent.SpanID(), sendTraceParent)
				}
				if len(sp.Links) != 1 || FormatTraceParent(sp.Links[0].SpanContext) != statusTraceParent {
					t.Errorf("span %d: links %+v, want one to %s", i, sp.Links, statusTraceParent)
				}
				if want := FormatTraceParent(sp.SpanContext); got[i] != want {
					t.Errorf("webhook %d: traceparent %q, want its attempt's span %q", i, got[i], want)
				}
				attrs := map[attribute.Key]attribute.Value{}
				for _, a := range sp.Attributes {
					attrs[a.Key] = a.Value
				}
				if attrs["webhook.attempt"].AsInt64() != int64(i+1) || attrs["app.event_type"].AsString() != "fax_completed" ||
					attrs["url.full"].AsString() != srv.URL+"/hook" {
					t.Errorf("span %d attributes: %v", i, sp.Attributes)
				}
			}
			if spans[0].Status.Code != codes.Error || spans[1].Status.Code == codes.Error {
				t.Errorf("span statuses %v, %v: want the failed attempt in error, the delivered one not", spans[0].Status, spans[1].Status)
			}
			if spans[0].SpanContext.SpanID() == spans[1].SpanContext.SpanID() {
				t.Error("both attempts share one span")
			}
		})
	}
}

// Without a tracer provider (none known yet), a traced job's webhook carries the stored
// context as it is, so the receiver's own spans still join the trace; nothing is exported.
func TestTracedJobWithoutProviderPassesStoredContext(t *testing.T) {
	rcv := &headerLog{}
	srv := httptest.NewServer(rcv)
	defer srv.Close()
	s := New(Options{Token: testToken, TracerProvider: func() trace.TracerProvider { return nil }})
	if res := s.Send(context.Background(), tracedJob(srv.URL, sendTraceParent, "")); res.Err != nil {
		t.Fatal(res.Err)
	}
	if got, _ := rcv.headers(); len(got) != 1 || got[0] != sendTraceParent {
		t.Fatalf("traceparent %q, want the stored %q", got, sendTraceParent)
	}
}

// The traceparent header is not signed: the X-Phaxio-Signature of a traced webhook is the one
// of the same webhook untraced, so receivers verifying Phaxio's signature see no difference.
func TestTraceParentLeavesSignatureAlone(t *testing.T) {
	var mu sync.Mutex
	var sigs []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		sigs = append(sigs, r.Header.Get("X-Phaxio-Signature"))
		mu.Unlock()
	}))
	defer srv.Close()
	_, tp := newSpanRecorder(t)
	s := New(Options{Token: testToken, TracerProvider: func() trace.TracerProvider { return tp }})
	for _, tpv := range []string{"", sendTraceParent} {
		if res := s.Send(context.Background(), tracedJob(srv.URL, tpv, "")); res.Err != nil {
			t.Fatal(res.Err)
		}
	}
	if len(sigs) != 2 || sigs[0] == "" || sigs[0] != sigs[1] {
		t.Fatalf("signatures %q: want the same for the traced and the untraced webhook", sigs)
	}
}

func TestTraceParentRoundTrip(t *testing.T) {
	sc := ParseTraceParent(sendTraceParent)
	if !sc.IsValid() || !sc.IsSampled() || FormatTraceParent(sc) != sendTraceParent {
		t.Fatalf("ParseTraceParent(%q) = %+v, formats as %q", sendTraceParent, sc, FormatTraceParent(sc))
	}
	for _, bad := range []string{"", "junk", "00-00000000000000000000000000000000-b7ad6b7169203331-01"} {
		if ParseTraceParent(bad).IsValid() || FormatTraceParent(ParseTraceParent(bad)) != "" {
			t.Errorf("%q parsed as a valid trace context", bad)
		}
	}
}

// FormatTraceParent writes what the W3C propagator injects.
func TestFormatTraceParentMatchesThePropagator(t *testing.T) {
	for _, flags := range []trace.TraceFlags{0, trace.FlagsSampled, trace.FlagsSampled | trace.FlagsRandom | 0x80} {
		sc := ParseTraceParent(sendTraceParent).WithTraceFlags(flags)
		c := propagation.MapCarrier{}
		propagation.TraceContext{}.Inject(trace.ContextWithSpanContext(context.Background(), sc), c)
		if got := FormatTraceParent(sc); got != c[HeaderTraceParent] {
			t.Errorf("flags %x: %q, the propagator %q", byte(flags), got, c[HeaderTraceParent])
		}
	}
}
