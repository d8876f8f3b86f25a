package handler_test

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddytest"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/faxhook/caddy-faxhook/examples/faxapp"
	"github.com/faxhook/caddy-faxhook/examples/harness"
	"github.com/faxhook/caddy-faxhook/examples/receiver"
	"github.com/faxhook/caddy-faxhook/queue/httpsend"
)

// spanExporter and spanProvider stand in for what Caddy's `tracing` handler builds: an SDK
// provider (here with the SDK's in-memory exporter) whose server span of each request is in
// the request's context when faxhook runs. Caddy's own handler exports over OTLP to the
// endpoint of the OTEL_* environment, which an in-process test cannot scope to itself; the
// e2e test runs that one, against an in-test collector.
var (
	spanExporter = tracetest.NewInMemoryExporter()
	spanProvider = sdktrace.NewTracerProvider(sdktrace.WithSyncer(spanExporter))
)

func init() { caddy.RegisterModule(testSpan{}) }

// testSpan is the HTTP handler `faxhook_test_span`: it starts a server span per request, as
// the tracing handler does, and passes the request on with it in its context.
type testSpan struct{}

func (testSpan) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "http.handlers.faxhook_test_span", New: func() caddy.Module { return testSpan{} }}
}

func (testSpan) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	ctx, span := spanProvider.Tracer("test").Start(r.Context(), r.Method+" "+r.URL.Path, trace.WithSpanKind(trace.SpanKindServer))
	defer span.End()
	return next.ServeHTTP(w, r.WithContext(ctx))
}

// The handler hands the request's span to the app: the send's span context travels with the
// fax to its webhook, whose attempt is a span of that trace (exported by the request's own
// provider) and whose traceparent header names that span.
func TestInProcessTracedSendReachesTheWebhook(t *testing.T) {
	t.Setenv("FAXHOOK_INPROCESS_TOKEN", "inproc-token")
	svc := faxapp.New(faxapp.Config{APIKey: "k", APISecret: "s", Tick: 40 * time.Millisecond, Seed: 5})
	up := serve(t, svc)
	rcv := receiver.New(receiver.Config{Token: "inproc-token"})
	var mu sync.Mutex
	var headers []string
	rcvURL := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		headers = append(headers, r.Header.Get(httpsend.HeaderTraceParent))
		mu.Unlock()
		rcv.ServeHTTP(w, r)
	}))
	admin, site := adminPort(t), port(t)
	storage := filepath.Join(t.TempDir(), "store")
	unloadAtEnd(t, admin)

	cfg := strings.Replace(jsonConfig(admin, site, storage, rcvURL+"/traced", up),
		`{"handler": "faxhook", `, `{"handler": "faxhook_test_span"}, {"handler": "faxhook", `, 1)
	caddytest.NewTester(t).WithDefaultOverrides(caddytest.Config{AdminPort: admin}).InitServer(cfg, "json")
	spanExporter.Reset()
	client := &harness.Client{Base: fmt.Sprintf("http://127.0.0.1:%d/v2.1", site), Key: "k", Secret: "s"}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	id, err := client.Send(ctx, harness.SendOptions{To: []string{"+15550100000"}, File: faxapp.PDF(1)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.WaitDone(ctx, id, 20*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if _, err := rcv.Wait(ctx, 1); err != nil {
		t.Fatal(err)
	}

	var send, delivery *tracetest.SpanStub
	deadline := time.Now().Add(10 * time.Second)
	for delivery == nil && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		spans := spanExporter.GetSpans()
		for i := range spans {
			switch s := &spans[i]; s.Name {
			case "POST /v2.1/faxes":
				send = s
			case "webhook fax_completed":
				delivery = s
			}
		}
	}
	if send == nil || delivery == nil {
		t.Fatalf("spans: send %v, delivery %v", send != nil, delivery != nil)
	}
	if delivery.Parent.TraceID() != send.SpanContext.TraceID() || delivery.Parent.SpanID() != send.SpanContext.SpanID() {
		t.Errorf("delivery span's parent %s/%s, want the send's span %s/%s", delivery.Parent.TraceID(), delivery.Parent.SpanID(),
			send.SpanContext.TraceID(), send.SpanContext.SpanID())
	}
	if len(delivery.Links) != 1 || delivery.Links[0].SpanContext.TraceID() == send.SpanContext.TraceID() {
		t.Errorf("delivery span links %+v, want one to the status request's own trace", delivery.Links)
	}
	mu.Lock()
	defer mu.Unlock()
	if want := httpsend.FormatTraceParent(delivery.SpanContext); len(headers) != 1 || headers[0] != want {
		t.Errorf("receiver got traceparent %q, want %q", headers, want)
	}
}
