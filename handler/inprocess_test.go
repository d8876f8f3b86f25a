package handler_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddytest"

	"github.com/faxhook/caddy-faxhook/examples/faxapp"
	"github.com/faxhook/caddy-faxhook/examples/harness"
	"github.com/faxhook/caddy-faxhook/examples/receiver"
	_ "github.com/faxhook/caddy-faxhook/module/plugin"
)

func serve(t *testing.T, h http.Handler) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return "http://" + l.Addr().String()
}

func port(t *testing.T) int {
	t.Helper()
	addr, err := harness.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	_, p, _ := net.SplitHostPort(addr)
	var n int
	fmt.Sscan(p, &n)
	return n
}

// inProcessAdmin is the admin port of the one in-process Caddy that caddytest runs for this test
// binary: every test must use the same one.
var inProcessAdmin int

func adminPort(t *testing.T) int {
	if inProcessAdmin == 0 {
		inProcessAdmin = port(t)
	}
	return inProcessAdmin
}

// unloadAtEnd unloads the in-process Caddy's config when the test ends; cleanups run
// last-registered first, so call it after creating the test's temp dirs. caddytest skips tests
// with -short, so it does so first, before registering a cleanup that would find no Caddy.
func unloadAtEnd(t *testing.T, admin int) {
	t.Helper()
	if testing.Short() {
		t.Skip("skipping an in-process Caddy test in short mode (caddytest skips them)")
	}
	t.Cleanup(func() { unload(t, admin) })
}

// unload replaces the in-process Caddy's config by an empty one, which closes faxhook's storage:
// caddytest keeps Caddy running between tests.
func unload(t *testing.T, admin int) {
	body := fmt.Sprintf(`{"admin":{"listen":"localhost:%d"}}`, admin)
	resp, err := http.Post(fmt.Sprintf("http://localhost:%d/load", admin), "application/json", strings.NewReader(body))
	if err != nil {
		t.Errorf("unloading the in-process config: %v", err)
		return
	}
	resp.Body.Close()
}

// adminGet returns the body of a GET on the in-process Caddy's admin endpoint.
func adminGet(t *testing.T, admin int, path string) string {
	t.Helper()
	resp, err := http.Get(fmt.Sprintf("http://localhost:%d%s", admin, path))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %s: %s", path, resp.Status, b)
	}
	return string(b)
}

// metric reads one sample from the admin endpoint's /metrics (0 when absent).
func metric(t *testing.T, admin int, series string) float64 {
	t.Helper()
	for _, line := range strings.Split(adminGet(t, admin, "/metrics"), "\n") {
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			if err != nil {
				t.Fatalf("metric %s: %v", line, err)
			}
			return v
		}
	}
	return 0
}

// waitMetric waits until a metric reaches want.
func waitMetric(t *testing.T, admin int, series string, want float64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for metric(t, admin, series) < want && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if got := metric(t, admin, series); got != want {
		t.Fatalf("%s = %v, want %v", series, got, want)
	}
}

// jsonConfig is a Caddy JSON config with the faxhook app and handler in front of upstream.
func jsonConfig(admin, site int, storage, sentURL, upstream string) string {
	return fmt.Sprintf(`{
	"admin": {"listen": "localhost:%d"},
	"apps": {
		"faxhook": {
			"storage": %q,
			"token": "{env.FAXHOOK_INPROCESS_TOKEN}",
			"sent_urls": [%q],
			"retry_schedule": ["100ms", "200ms"],
			"allow_private": ["127.0.0.0/8"]
		},
		"http": {
			"servers": {
				"fax": {
					"listen": ["127.0.0.1:%d"],
					"automatic_https": {"disable": true},
					"routes": [{"handle": [
						{"handler": "faxhook", "max_capture": 262144},
						{"handler": "reverse_proxy", "upstreams": [{"dial": %q}]}
					]}]
				}
			}
		}
	}
}`, admin, storage, sentURL, site, strings.TrimPrefix(upstream, "http://"))
}

// TestInProcessJSONConfigAndReload runs Caddy in this process (so the race detector covers the
// handler and the app) from a JSON config, then reloads it with another sent URL: the store is
// shared, nothing is lost, and the new URL applies.
func TestInProcessJSONConfigAndReload(t *testing.T) {
	t.Setenv("FAXHOOK_INPROCESS_TOKEN", "inproc-token")
	svc := faxapp.New(faxapp.Config{APIKey: "k", APISecret: "s", Tick: 40 * time.Millisecond, Seed: 9})
	up := serve(t, svc)
	rcv := receiver.New(receiver.Config{Token: "inproc-token"})
	rcvURL := serve(t, rcv)
	admin, site := adminPort(t), port(t)
	storage := filepath.Join(t.TempDir(), "store")
	unloadAtEnd(t, admin) // runs before the temp dir is removed

	tester := caddytest.NewTester(t).WithDefaultOverrides(caddytest.Config{AdminPort: admin})
	tester.InitServer(jsonConfig(admin, site, storage, rcvURL+"/first", up), "json")
	client := &harness.Client{Base: fmt.Sprintf("http://127.0.0.1:%d/v2.1", site), Key: "k", Secret: "s"}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	send := func() int64 {
		t.Helper()
		id, err := client.Send(ctx, harness.SendOptions{To: []string{"+15550100000"}, File: faxapp.PDF(1)})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := client.WaitDone(ctx, id, 20*time.Millisecond); err != nil {
			t.Fatal(err)
		}
		return id
	}
	delivered0 := metric(t, admin, `faxhook_deliveries_total{outcome="delivered",scheme="http"}`)
	events0 := metric(t, admin, `faxhook_events_total{event_type="fax_completed"}`)
	first := send()
	if _, err := rcv.Wait(ctx, 1); err != nil {
		t.Fatal(err)
	}
	waitMetric(t, admin, `faxhook_deliveries_total{outcome="delivered",scheme="http"}`, delivered0+1)
	if got := metric(t, admin, `faxhook_events_total{event_type="fax_completed"}`); got != events0+1 {
		t.Errorf("faxhook_events_total{fax_completed} = %v, want %v", got, events0+1)
	}
	stats := adminGet(t, admin, "/faxhook/stats")
	if !strings.Contains(stats, `"delivered":1`) || strings.Contains(stats, "inproc-token") {
		t.Errorf("admin /faxhook/stats = %s", stats)
	}
	tester.InitServer(jsonConfig(admin, site, storage, rcvURL+"/second", up), "json")
	http.DefaultClient.CloseIdleConnections() // the old server may close them under a POST
	second := send()
	ds, err := rcv.Wait(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	// The counters survived the reload and went on counting.
	waitMetric(t, admin, `faxhook_deliveries_total{outcome="delivered",scheme="http"}`, delivered0+2)
	if got := metric(t, admin, `faxhook_events_total{event_type="fax_completed"}`); got != events0+2 {
		t.Errorf("after the reload faxhook_events_total{fax_completed} = %v, want %v", got, events0+2)
	}
	time.Sleep(200 * time.Millisecond)
	if rcv.Count() != 2 {
		t.Fatalf("%d deliveries, want 2", rcv.Count())
	}
	want := map[string]int64{rcvURL + "/first": first, rcvURL + "/second": second}
	for _, d := range ds {
		if !d.Verified || !strings.Contains(d.Fields["fax"], fmt.Sprintf(`"id":%d,`, want[d.URL])) {
			t.Errorf("delivery to %s: verified=%v fax=%s", d.URL, d.Verified, d.Fields["fax"])
		}
	}
}

// TestManyReloadsUnderTraffic reloads the in-process Caddy 50 times while faxes are sent and
// followed through it: no reload fails on Badger's lock, every fax's webhook arrives exactly
// once, and the goroutine count returns to its baseline.
func TestManyReloadsUnderTraffic(t *testing.T) {
	if testing.Short() {
		t.Skip("50 reloads")
	}
	t.Setenv("FAXHOOK_INPROCESS_TOKEN", "inproc-token")
	svc := faxapp.New(faxapp.Config{APIKey: "k", APISecret: "s", Tick: 20 * time.Millisecond, Seed: 11})
	up := serve(t, svc)
	rcv := receiver.New(receiver.Config{Token: "inproc-token"})
	rcvURL := serve(t, rcv)
	admin, site := adminPort(t), port(t)
	storage := filepath.Join(t.TempDir(), "store")
	unloadAtEnd(t, admin) // runs before the temp dir is removed
	tester := caddytest.NewTester(t).WithDefaultOverrides(caddytest.Config{AdminPort: admin})
	cfg := func(i int) string {
		// Each reload changes the config (the sent URL's query), so Caddy really reloads.
		return jsonConfig(admin, site, storage, fmt.Sprintf("%s/sent?gen=%d", rcvURL, i%2), up)
	}
	tester.InitServer(cfg(0), "json")
	time.Sleep(200 * time.Millisecond)
	baseline := ourGoroutines()

	client := &harness.Client{Base: fmt.Sprintf("http://127.0.0.1:%d/v2.1", site), Key: "k", Secret: "s"}
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	var mu sync.Mutex
	sent := map[int64]bool{}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 2; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				id, err := client.Send(ctx, harness.SendOptions{To: []string{"+15550100000"}, File: faxapp.PDF(1)})
				if err != nil {
					continue // a request may meet a listener being swapped; the fax was not sent
				}
				for {
					s, err := client.Status(ctx, id)
					if err == nil && (s == "success" || s == "failure") {
						break
					}
					if ctx.Err() != nil {
						return
					}
					time.Sleep(10 * time.Millisecond)
				}
				mu.Lock()
				sent[id] = true
				mu.Unlock()
			}
		}()
	}
	maxDispatchers := 0.0
	for i := 1; i <= 50; i++ {
		tester.InitServer(cfg(i), "json")
		if n := metric(t, admin, "faxhook_dispatchers_running"); n > maxDispatchers {
			maxDispatchers = n
		}
		time.Sleep(20 * time.Millisecond)
	}
	if maxDispatchers != 1 {
		t.Errorf("faxhook_dispatchers_running peaked at %v during the reloads, want exactly 1", maxDispatchers)
	}
	close(stop)
	wg.Wait()
	mu.Lock()
	n := len(sent)
	mu.Unlock()
	if n == 0 {
		t.Fatal("no fax got through during the reloads")
	}
	if _, err := rcv.Wait(ctx, n); err != nil {
		t.Fatalf("%d faxes sent, %d webhooks: %v", n, rcv.Count(), err)
	}
	time.Sleep(300 * time.Millisecond)
	seen := map[int64]int{}
	for _, d := range rcv.Deliveries() {
		var f struct {
			ID int64 `json:"id"`
		}
		json.Unmarshal([]byte(d.Fields["fax"]), &f)
		seen[f.ID]++
		if !d.Verified {
			t.Errorf("unverified delivery for fax %d", f.ID)
		}
	}
	for id := range sent {
		if seen[id] != 1 {
			t.Errorf("fax %d: %d webhooks, want exactly 1", id, seen[id])
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for ourGoroutines() > baseline && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if g := ourGoroutines(); g > baseline {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		t.Errorf("%d faxhook goroutines after 50 reloads, baseline %d; stacks:\n%s", g, baseline, buf)
	}
	t.Logf("%d faxes through 50 reloads", n)
}

// ourGoroutines counts the goroutines running faxhook's app or queue code (idle keep-alive
// connections of Caddy's and net/http's transports come and go on their own timers).
func ourGoroutines() int {
	buf := make([]byte, 4<<20)
	buf = buf[:runtime.Stack(buf, true)]
	n := 0
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "caddy-faxhook/module.") || strings.Contains(g, "caddy-faxhook/queue.") {
			n++
		}
	}
	return n
}
