package module

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/faxhook/caddy-faxhook/queue"
)

// A receiver that keeps failing goes down: the admin API shows it (without credentials), the
// faxhook_destination_down gauge counts it, and a faxhook_destination_down Caddy event says so.
func TestDestinationDownShownInAdminMetricsAndEvents(t *testing.T) {
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	var receiverOK atomic.Bool
	srv := failingReceiver(t, &receiverOK)
	hook := "http://user:pass@" + srv.Listener.Addr().String() + "/hook"
	e := startEngine(t, settings{token: "s3cret-token", schedule: []time.Duration{time.Millisecond, time.Millisecond, time.Hour},
		timeout: 5 * time.Second, workers: 4, health: queue.Health{Failures: 3, ProbeInterval: time.Hour}})
	h := &recordingHandler{gate: make(chan struct{}), got: make(chan caddy.Event, 8)}
	close(h.gate)
	ev, _ := newEventsApp(t, ctx, h, &e.ev, EventDestinationDown, EventDestinationUp)
	ev.Emit(ctx, "started", nil)
	reg := prometheus.NewPedanticRegistry()
	if err := registerMetrics(reg); err != nil {
		t.Fatal(err)
	}

	completeFax(t, e, 201, hook)
	completeFax(t, e, 202, hook)
	select {
	case got := <-h.got:
		d := got.Data
		if got.Name() != EventDestinationDown || d["destination"] != "http://"+srv.Listener.Addr().String() ||
			d["state"] != queue.HealthDown || d["consecutive_failures"] != 3 {
			t.Fatalf("event %s %v", got.Name(), d)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no faxhook_destination_down event")
	}

	var v destinationsView
	newAdminClient(t, nil).ok("GET", "/faxhook/destinations", &v)
	if v.Health != "on" || len(v.Destinations) != 1 {
		t.Fatalf("destinations = %+v", v)
	}
	dh := v.Destinations[0]
	if dh.State != queue.HealthDown || dh.Failures < 3 || dh.NextProbe.IsZero() || strings.Contains(dh.Destination, "pass") {
		t.Fatalf("destination = %+v", dh)
	}
	if got := gather(t, reg)["faxhook_destination_down{}"]; got != 1 {
		t.Fatalf("faxhook_destination_down = %v, want 1", got)
	}

	// Health turned off by a reload: every destination is up, and its webhooks keep their ladders.
	if err := e.start(settings{token: "s3cret-token", schedule: []time.Duration{time.Hour}, timeout: 5 * time.Second, workers: 4,
		health: queue.Health{Off: true}}, e.log.Load()); err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-h.got:
		if got.Name() != EventDestinationUp {
			t.Fatalf("event %s after health off", got.Name())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no faxhook_destination_up event after health off")
	}
	newAdminClient(t, nil).ok("GET", "/faxhook/destinations", &v)
	if v.Health != "off" || len(v.Destinations) != 0 {
		t.Fatalf("destinations with health off = %+v", v)
	}
	if got := gather(t, reg)["faxhook_destination_down{}"]; got != 0 {
		t.Fatalf("faxhook_destination_down = %v with health off, want 0", got)
	}
}
