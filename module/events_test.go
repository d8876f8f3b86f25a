package module

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyevents"

	"github.com/faxhook/caddy-faxhook/module/profile/fax"
	"github.com/faxhook/caddy-faxhook/module/render"
	"github.com/faxhook/caddy-faxhook/queue"
	"github.com/faxhook/caddy-faxhook/queue/ssrf"
)

// recordingHandler is an events handler that records events, after waiting for gate.
type recordingHandler struct {
	gate chan struct{}
	got  chan caddy.Event
}

func (h *recordingHandler) Handle(_ context.Context, e caddy.Event) error {
	<-h.gate
	h.got <- e
	return nil
}

// newEventsApp returns a started events app, outside any Caddy config, that sends the events
// names to h and puts its target, also returned, to use in em when "started" is emitted.
func newEventsApp(t *testing.T, ctx caddy.Context, h *recordingHandler, em *eventEmitter, names ...string) (*caddyevents.App, *eventsTarget) {
	t.Helper()
	ev := new(caddyevents.App)
	if err := ev.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	for _, name := range names {
		if err := ev.On(name, h); err != nil {
			t.Fatal(err)
		}
	}
	target := &eventsTarget{ctx: ctx, app: ev}
	if err := ev.On("started", activateEvents{em: em, t: target}); err != nil {
		t.Fatal(err)
	}
	if err := ev.Start(); err != nil {
		t.Fatal(err)
	}
	return ev, target
}

func TestDeliveryEventsEmittedOnceStartedWithoutBlocking(t *testing.T) {
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	var em eventEmitter
	cfg := &settings{token: "s3cret-token"}
	out := outcomes{events: &em, cfg: func() *settings { return cfg }}
	h := &recordingHandler{gate: make(chan struct{}), got: make(chan caddy.Event, 2*emitBacklog+8)}
	ev, target := newEventsApp(t, ctx, h, &em, EventDeliveryFailed, EventDeliveryDead)

	dead := &queue.Job{ID: "j1", Meta: metaOf(7, fax.EventFaxCompleted), URL: "https://user:pass@hooks.example/x",
		State: queue.StateDead, Attempts: []queue.Attempt{{Status: 500}, {Status: 500}}}
	res := queue.Result{Status: 500, Err: errors.New("posting webhook to https://user:pass@hooks.example/x: receiver answered 500 (token s3cret-token)")}

	// Before the config has started, nothing is emitted (the events app may still be starting).
	out.onOutcome(dead, res)
	if em.current() != nil {
		t.Fatal("a target is in use before the started event")
	}
	ev.Emit(ctx, "started", nil)
	if em.current() != target {
		t.Fatal("the started event did not put the target to use")
	}

	out.onOutcome(dead, res)
	close(h.gate)
	for _, want := range []string{EventDeliveryFailed, EventDeliveryDead} {
		select {
		case got := <-h.got:
			d := got.Data
			if got.Name() != want || d["job_id"] != "j1" || d["fax_id"] != int64(7) || d["event_type"] != fax.EventFaxCompleted ||
				d["url"] != "https://REDACTED@hooks.example/x" || d["attempt"] != 2 || d["status"] != 500 {
				t.Fatalf("event %s = %v, want %s", got.Name(), d, want)
			}
			msg, _ := d["error"].(string)
			if !strings.Contains(msg, "receiver answered 500") || strings.Contains(msg, "s3cret-token") || strings.Contains(msg, "pass") {
				t.Fatalf("error not redacted: %q", msg)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("no %s event", want)
		}
	}

	// A delivered attempt emits nothing; a retry emits only delivery_failed.
	ok := *dead
	ok.State = queue.StateDelivered
	out.onOutcome(&ok, queue.Result{Status: 200})
	retry := *dead
	retry.State = queue.StatePending
	out.onOutcome(&retry, res)
	select {
	case got := <-h.got:
		if got.Name() != EventDeliveryFailed {
			t.Fatalf("got %s after a retry", got.Name())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no event for a retry")
	}
	select {
	case got := <-h.got:
		t.Fatalf("unexpected event %s", got.Name())
	case <-time.After(50 * time.Millisecond):
	}

	// A slow handler never holds up the dispatcher: events beyond the backlog are dropped.
	h.gate = make(chan struct{})
	begin := time.Now()
	for i := 0; i < 4*emitBacklog; i++ {
		out.onOutcome(dead, res)
	}
	if d := time.Since(begin); d > time.Second {
		t.Fatalf("onOutcome blocked for %s behind a slow handler", d)
	}
	close(h.gate)

	// Once dropped (the config's Cleanup), the target is no longer used; close stops the goroutine.
	em.drop(target)
	if em.current() != nil {
		t.Fatal("target still in use after drop")
	}
	em.close()
	em.close()
	out.onOutcome(dead, res) // after close: a no-op, no panic
	select {
	case <-em.done:
	default:
		t.Fatal("the emitting goroutine still runs after close")
	}
}

func TestNewestStartedTargetWins(t *testing.T) {
	var em eventEmitter
	a, b := &eventsTarget{}, &eventsTarget{}
	em.use(a)
	em.use(b)
	if em.current() != b {
		t.Fatal("newest target not current")
	}
	em.drop(b) // the new config failed and was cleaned up
	if em.current() != a {
		t.Fatal("older target not restored")
	}
	em.close()
	if em.current() != nil {
		t.Fatal("target after close")
	}
	em.use(a)
	if em.current() != nil {
		t.Fatal("use after close took effect")
	}
}

func TestRedactor(t *testing.T) {
	r := redactorFor(&settings{token: "tok-123456"}, "https://alice:hunter22@example.com/x")
	in := `Post "https://alice:hunter22@example.com/x": token tok-123456, pw hunter22, other ftp://bob:pw@h/ ok`
	got := r.text(in)
	for _, s := range []string{"tok-123456", "hunter22", "alice:", "bob:pw"} {
		if strings.Contains(got, s) {
			t.Fatalf("%q survived: %s", s, got)
		}
	}
	if !strings.Contains(got, "https://REDACTED@example.com/x") || !strings.Contains(got, "ftp://REDACTED@h/") {
		t.Fatalf("redacted text = %s", got)
	}
}

// The faxhook_delivery_dead event says why the job died: a destination the SSRF guard refused
// and other permanent failures are not "no more retries".
func TestDeadEventSaysWhy(t *testing.T) {
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	var em eventEmitter
	out := outcomes{events: &em, cfg: func() *settings { return &settings{} }}
	h := &recordingHandler{gate: make(chan struct{}), got: make(chan caddy.Event, 16)}
	close(h.gate)
	ev, _ := newEventsApp(t, ctx, h, &em, EventDeliveryFailed, EventDeliveryDead)
	ev.Emit(ctx, "started", nil)
	defer em.close()

	blocked := &ssrf.BlockedError{Addr: netip.MustParseAddr("127.0.0.1"), Reason: "loopback"}
	for _, c := range []struct {
		res  queue.Result
		want string
	}{
		{queue.Result{Err: fmt.Errorf("posting webhook to http://127.0.0.1/x: %w", blocked), Permanent: true}, "destination refused by the SSRF guard (permanent)"},
		{queue.Result{Err: errors.New(`invalid webhook URL "http://0x7f.1/": host "0x7f.1" is numeric`), Permanent: true}, "permanent failure, not retried"},
		{queue.Result{Status: 500, Err: errors.New("receiver answered 500 Internal Server Error")}, "no more retries"},
	} {
		out.onOutcome(&queue.Job{ID: "j", Meta: metaOf(1, ""), URL: "http://127.0.0.1/x", State: queue.StateDead, Attempts: []queue.Attempt{{}}}, c.res)
		for _, name := range []string{EventDeliveryFailed, EventDeliveryDead} {
			select {
			case got := <-h.got:
				if got.Name() != name {
					t.Fatalf("event %s, want %s", got.Name(), name)
				}
				if name == EventDeliveryDead && got.Data["reason"] != c.want {
					t.Errorf("%s reason = %v, want %q", name, got.Data["reason"], c.want)
				}
			case <-time.After(5 * time.Second):
				t.Fatalf("no %s event", name)
			}
		}
	}
}

// metaOf is the metadata of the jobs of the event eventType of fax faxID, as the tracker sets it.
func metaOf(faxID int64, eventType string) queue.Labels {
	return render.Event{FaxID: faxID, Type: eventType}.Meta()
}

// faxIDOf returns the fax id in a job's metadata.
func faxIDOf(j *queue.Job) int64 {
	id, _ := render.FaxOf(j.Meta)
	return id
}

// eventTypeOf returns the event type in a job's metadata.
func eventTypeOf(j *queue.Job) string { return j.Meta.Get(render.MetaEventType) }
