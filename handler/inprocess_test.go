package handler_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strings"
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
	admin, site := port(t), port(t)
	storage := filepath.Join(t.TempDir(), "store")

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
	first := send()
	if _, err := rcv.Wait(ctx, 1); err != nil {
		t.Fatal(err)
	}
	tester.InitServer(jsonConfig(admin, site, storage, rcvURL+"/second", up), "json")
	second := send()
	ds, err := rcv.Wait(ctx, 2)
	if err != nil {
		t.Fatal(err)
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
