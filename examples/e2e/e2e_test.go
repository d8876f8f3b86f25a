// Package e2e runs faxhook end to end: a real Caddy process built with the plugin, the simulated
// fax service and a signature-verifying receiver, all on loopback.
package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/faxhook/caddy-faxhook/examples/faxapp"
	"github.com/faxhook/caddy-faxhook/examples/harness"
	"github.com/faxhook/caddy-faxhook/examples/receiver"
)

const (
	token  = "e2e-webhook-token"
	key    = "k"
	secret = "s"
)

// env is one end-to-end setup.
type env struct {
	t       *testing.T
	faxURL  string
	svc     *faxapp.Service
	rcv     *receiver.Receiver
	rcvURL  string
	caddy   *harness.Caddy
	site    string
	admin   string
	storage string
	client  *harness.Client

	files fileRequests // the fax service's file requests (GET …/faxes/{id}/file)
}

// fileRequests records the file requests the fax service got, and can refuse them (403).
type fileRequests struct {
	mu   sync.Mutex
	seen []string // "path user:password" of each file request
	deny bool
	// status holds the time of each status request (GET /v2.1/faxes/{id}), by fax id.
	status map[string][]time.Time
}

// wrap records the file and status requests to h, and answers file requests 403 while deny is
// set.
func (f *fileRequests) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if id, ok := strings.CutPrefix(r.URL.Path, "/v2.1/faxes/"); ok && r.Method == http.MethodGet && !strings.Contains(id, "/") {
			f.mu.Lock()
			if f.status == nil {
				f.status = map[string][]time.Time{}
			}
			f.status[id] = append(f.status[id], time.Now())
			f.mu.Unlock()
		}
		if strings.HasSuffix(r.URL.Path, "/file") {
			user, pass, _ := r.BasicAuth()
			f.mu.Lock()
			f.seen = append(f.seen, r.URL.Path+" "+user+":"+pass)
			deny := f.deny
			f.mu.Unlock()
			if deny {
				http.Error(w, `{"success":false,"message":"forbidden"}`, http.StatusForbidden)
				return
			}
		}
		h.ServeHTTP(w, r)
	})
}

// statusRequests returns the times of the status requests seen so far, by fax id.
func (f *fileRequests) statusRequests() map[string][]time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make(map[string][]time.Time, len(f.status))
	for id, ts := range f.status {
		out[id] = append([]time.Time(nil), ts...)
	}
	return out
}

// requests returns the file requests seen so far.
func (f *fileRequests) requests() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.seen...)
}

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

// newEnv starts the fax service, a receiver answering with respond (nil: verify and accept) and
// Caddy with the given global faxhook options.
func newEnv(t *testing.T, respond func(receiver.Delivery) int, faxhookOpts string) *env {
	t.Helper()
	return newEnvWith(t, faxapp.Config{Tick: 50 * time.Millisecond, Seed: 3}, respond, faxhookOpts)
}

// newEnvAt is newEnv with faxhook's storage in storage (empty: a temporary directory).
func newEnvAt(t *testing.T, respond func(receiver.Delivery) int, faxhookOpts, storage string) *env {
	t.Helper()
	return newEnvIn(t, faxapp.Config{Tick: 50 * time.Millisecond, Seed: 3}, respond, faxhookOpts, storage)
}

// newEnvWith is newEnv with the fax service configured by svc (its credentials are filled in).
func newEnvWith(t *testing.T, svc faxapp.Config, respond func(receiver.Delivery) int, faxhookOpts string) *env {
	t.Helper()
	return newEnvIn(t, svc, respond, faxhookOpts, "")
}

// newEnvIn is newEnvWith with faxhook's storage in storage (empty: a temporary directory).
func newEnvIn(t *testing.T, svc faxapp.Config, respond func(receiver.Delivery) int, faxhookOpts, storage string, extraEnv ...string) *env {
	t.Helper()
	bin, err := harness.CaddyBinary()
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t}
	svc.APIKey, svc.APISecret = key, secret
	e.svc = faxapp.New(svc)
	e.faxURL = serve(t, e.files.wrap(e.svc))
	e.rcv = receiver.New(receiver.Config{Token: token, Respond: respond})
	e.rcvURL = serve(t, e.rcv)
	if e.admin, err = harness.FreeAddr(); err != nil {
		t.Fatal(err)
	}
	if e.site, err = harness.FreeAddr(); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	e.storage = storage
	if storage == "" {
		e.storage = filepath.Join(dir, "storage")
	}
	e.caddy, err = harness.StartCaddy(bin, filepath.Join(dir, "caddy"), e.admin, e.caddyfile(faxhookOpts), append([]string{"FAXHOOK_TOKEN=" + token}, extraEnv...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := e.caddy.Stop(); err != nil {
			t.Errorf("stopping caddy: %v", err)
		}
		if t.Failed() {
			t.Logf("caddy log:\n%s", e.caddy.Tail(60))
		}
	})
	e.client = &harness.Client{Base: "http://" + e.site + "/v2.1", Key: key, Secret: secret}
	return e
}

func (e *env) caddyfile(faxhookOpts string) string {
	return fmt.Sprintf(`{
	admin %s
	auto_https off
	faxhook {
		storage %s
		token {env.FAXHOOK_TOKEN}
		allow_private 127.0.0.0/8
		%s
	}
}

http://%s {
	handle /v2.1/* {
		faxhook
		reverse_proxy %s
	}
}
`, e.admin, e.storage, strings.NewReplacer("RCV", e.rcvURL, "FAX", e.faxURL).Replace(faxhookOpts), e.site, e.faxURL)
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// sendAndFollow sends a fax through Caddy and polls it through Caddy until it is final.
func (e *env) sendAndFollow(ctx context.Context, o harness.SendOptions) int64 {
	e.t.Helper()
	id, err := e.client.Send(ctx, o)
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.client.WaitDone(ctx, id, 30*time.Millisecond); err != nil {
		e.t.Fatal(err)
	}
	return id
}

type faxField struct {
	ID     int64  `json:"id"`
	Status string `json:"status"`
}

func parseFax(t *testing.T, d receiver.Delivery) faxField {
	t.Helper()
	var f faxField
	if err := json.Unmarshal([]byte(d.Fields["fax"]), &f); err != nil {
		t.Fatalf("fax field is not JSON: %v: %q", err, d.Fields["fax"])
	}
	return f
}

// quiet waits a little and fails if more than n deliveries arrived.
func (e *env) expectExactly(n int) []receiver.Delivery {
	e.t.Helper()
	if _, err := e.rcv.Wait(ctxT(e.t, 20*time.Second), n); err != nil {
		e.t.Fatalf("waiting for %d deliveries (got %d): %v", n, e.rcv.Count(), err)
	}
	time.Sleep(500 * time.Millisecond)
	ds := e.rcv.Deliveries()
	if len(ds) != n {
		e.t.Fatalf("%d deliveries, want exactly %d: %+v", len(ds), n, ds)
	}
	return ds
}

func TestSentFaxWebhookURLPrecedence(t *testing.T) {
	e := newEnv(t, nil, "sent_url RCV/global-sent")
	ctx := ctxT(t, 60*time.Second)

	withCB := e.sendAndFollow(ctx, harness.SendOptions{To: []string{"+15550100000"}, File: faxapp.PDF(1),
		CallbackURL: e.rcvURL + "/per-fax?ref=a%20b"})
	global := e.sendAndFollow(ctx, harness.SendOptions{To: []string{"+15550100002"}, File: faxapp.PDF(1)})
	ds := e.expectExactly(2)

	byID := map[int64]receiver.Delivery{}
	for _, d := range ds {
		if !d.Verified {
			t.Errorf("signature not verified: %+v", d)
		}
		if d.Fields["event_type"] != "fax_completed" {
			t.Errorf("event_type = %q", d.Fields["event_type"])
		}
		byID[parseFax(t, d).ID] = d
	}
	if d := byID[withCB]; d.URL != e.rcvURL+"/per-fax?ref=a%20b" || parseFax(t, d).Status != "success" {
		t.Errorf("fax with callback_url: delivered to %q status %q", d.URL, parseFax(t, d).Status)
	}
	if d := byID[global]; d.URL != e.rcvURL+"/global-sent" || parseFax(t, d).Status != "failure" {
		t.Errorf("fax without callback_url: delivered to %q status %q", d.URL, parseFax(t, d).Status)
	}

	// Without sent_url, a fax without callback_url produces nothing.
	if err := e.caddy.Reload(e.caddyfile("")); err != nil {
		t.Fatal(err)
	}
	e.sendAndFollow(ctx, harness.SendOptions{To: []string{"+15550100000"}, File: faxapp.PDF(1)})
	e.expectExactly(2)
}

func TestCallbackAfterLargeFileStreams(t *testing.T) {
	e := newEnv(t, nil, "")
	ctx := ctxT(t, 90*time.Second)
	big := make([]byte, 50<<20)
	copy(big, faxapp.PDF(2))
	for i := 4096; i < len(big); i += 4096 {
		big[i] = byte(i >> 12)
	}
	id := e.sendAndFollow(ctx, harness.SendOptions{To: []string{"+15550100000"}, File: big,
		CallbackURL: e.rcvURL + "/after-file", CallbackAfterFile: true})
	got, ok := e.svc.File(id)
	if !ok || len(got) != len(big) || string(got[:4096]) != string(big[:4096]) || string(got[len(got)-4096:]) != string(big[len(big)-4096:]) {
		t.Fatalf("the upstream did not receive the 50 MB file intact (%d bytes)", len(got))
	}
	ds := e.expectExactly(1)
	if ds[0].URL != e.rcvURL+"/after-file" || !ds[0].Verified {
		t.Fatalf("delivery = %+v", ds[0])
	}
}

func TestRetriesUntilAccepted(t *testing.T) {
	var n atomic.Int32
	e := newEnv(t, func(d receiver.Delivery) int {
		if n.Add(1) <= 2 {
			return 500
		}
		return 200
	}, "sent_url RCV/flaky\n\t\tretry_schedule 200ms 400ms 800ms")
	ctx := ctxT(t, 60*time.Second)
	e.sendAndFollow(ctx, harness.SendOptions{To: []string{"+15550100000"}, File: faxapp.PDF(1)})
	ds := e.expectExactly(3)
	if ds[0].Status != 500 || ds[1].Status != 500 || ds[2].Status != 200 {
		t.Fatalf("statuses %d %d %d", ds[0].Status, ds[1].Status, ds[2].Status)
	}
	if g1, g2 := ds[1].Time.Sub(ds[0].Time), ds[2].Time.Sub(ds[1].Time); g1 < 200*time.Millisecond || g2 < 400*time.Millisecond {
		t.Fatalf("retries came too early: gaps %s, %s", g1, g2)
	}
	for i := 1; i < 3; i++ {
		if ds[i].Fields["fax"] != ds[0].Fields["fax"] || ds[i].Signature != ds[0].Signature {
			t.Fatal("a retry did not send identical fields and signature")
		}
	}
}

func TestKill9WhileDeliveringThenRestart(t *testing.T) {
	var hang atomic.Bool
	hang.Store(true)
	release := make(chan struct{})
	var once sync.Once
	hit := make(chan struct{}, 10)
	e := newEnv(t, func(d receiver.Delivery) int {
		if hang.Load() {
			hit <- struct{}{}
			<-release // the receiver is slow: Caddy is killed before it answers
			return 200
		}
		return 200
	}, "sent_url RCV/slow\n\t\tretry_schedule 1h")
	t.Cleanup(func() { once.Do(func() { close(release) }) })
	ctx := ctxT(t, 60*time.Second)
	id := e.sendAndFollow(ctx, harness.SendOptions{To: []string{"+15550100000"}, File: faxapp.PDF(1)})
	select {
	case <-hit:
	case <-ctx.Done():
		t.Fatal("no delivery attempt before the kill")
	}
	e.caddy.Kill()
	hang.Store(false)
	once.Do(func() { close(release) })
	if err := e.caddy.Start(); err != nil {
		t.Fatal(err)
	}
	// The attempt cut short by the kill is repeated at once, not after the 1h retry delay.
	ds, err := e.rcv.Wait(ctxT(t, 20*time.Second), 2)
	if err != nil {
		t.Fatalf("the webhook did not arrive after the restart: %v", err)
	}
	if f := parseFax(t, ds[1]); f.ID != id || !ds[1].Verified {
		t.Fatalf("after restart: %+v", ds[1])
	}
}

func TestReloadsDuringTrafficLoseNothing(t *testing.T) {
	e := newEnv(t, nil, "sent_url RCV/sent")
	ctx := ctxT(t, 90*time.Second)
	const faxes = 6
	var wg sync.WaitGroup
	errs := make(chan error, faxes)
	for i := 0; i < faxes; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			var id int64
			var err error
			// A reload may close a keep-alive connection under a request (net/http does not
			// retry a POST); such a send never reached the service, so send again.
			for try := 0; try < 3; try++ {
				if id, err = e.client.Send(ctx, harness.SendOptions{To: []string{fmt.Sprintf("+1555010%04d", i%2)}, File: faxapp.PDF(2)}); err == nil {
					break
				}
			}
			if err != nil {
				errs <- err
				return
			}
			for {
				s, err := e.client.Status(ctx, id)
				if err == nil && (s == "success" || s == "failure" || s == "partialsuccess") {
					return
				}
				if ctx.Err() != nil {
					errs <- ctx.Err()
					return
				}
				time.Sleep(20 * time.Millisecond)
			}
		}(i)
	}
	for r := 0; r < 5; r++ {
		time.Sleep(100 * time.Millisecond)
		opts := fmt.Sprintf("sent_url RCV/sent\n\t\ttimeout %ds", 10+r)
		if err := e.caddy.Reload(e.caddyfile(opts)); err != nil {
			t.Fatalf("reload %d: %v", r+1, err)
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	ds := e.expectExactly(faxes)
	seen := map[int64]bool{}
	for _, d := range ds {
		id := parseFax(t, d).ID
		if seen[id] || !d.Verified {
			t.Fatalf("duplicate or unverified delivery for fax %d", id)
		}
		seen[id] = true
	}
	if log := e.caddy.Tail(400); strings.Contains(log, "directory lock") {
		t.Fatalf("a reload hit Badger's lock:\n%s", log)
	}
}

func TestSSRFGuardBlocksPrivateDestinationsByDefault(t *testing.T) {
	e := newEnv(t, nil, "")
	// Caddy with the guard's defaults: no allow_private.
	if err := e.caddy.Reload(strings.Replace(e.caddyfile("sent_url RCV/sent"), "allow_private 127.0.0.0/8", "", 1)); err != nil {
		t.Fatal(err)
	}
	ctx := ctxT(t, 60*time.Second)
	e.sendAndFollow(ctx, harness.SendOptions{To: []string{"+15550100000"}, File: faxapp.PDF(1),
		CallbackURL: "http://localhost:" + e.rcvURL[strings.LastIndex(e.rcvURL, ":")+1:] + "/via-dns"})
	e.sendAndFollow(ctx, harness.SendOptions{To: []string{"+15550100000"}, File: faxapp.PDF(1)})
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) && strings.Count(e.caddy.Tail(200), "webhook dead") < 2 {
		time.Sleep(50 * time.Millisecond)
	}
	log := e.caddy.Tail(200)
	if n := strings.Count(log, "webhook dead"); n != 2 || !strings.Contains(log, "is loopback; blocked") {
		t.Fatalf("want both webhooks dead at once as blocked loopback destinations; log:\n%s", log)
	}
	if strings.Contains(log, "retry scheduled") {
		t.Fatal("a blocked destination was scheduled for a retry")
	}
	if n := e.rcv.Count(); n != 0 {
		t.Fatalf("the loopback receiver got %d requests through the guard", n)
	}
}

// Caddy killed with SIGKILL right after answering sends (before its store committed them, which
// it does moments later off the request path): when it is started again, the send journal
// brings the callback_urls back, and every fax's webhook goes to its own URL, none to sent_url.
func TestKill9RightAfterSendsKeepsTheirCallbackURLs(t *testing.T) {
	e := newEnv(t, nil, "sent_url RCV/global")
	ctx := ctxT(t, 60*time.Second)
	var ids []int64
	for i := range 5 {
		id, err := e.client.Send(ctx, harness.SendOptions{To: []string{"+15550100000"}, File: faxapp.PDF(1),
			CallbackURL: fmt.Sprintf("%s/own/%d", e.rcvURL, i)})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	e.caddy.Kill()
	if err := e.caddy.Start(); err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		if _, err := e.client.WaitDone(ctx, id, 30*time.Millisecond); err != nil {
			t.Fatal(err)
		}
	}
	ds := e.expectExactly(len(ids))
	for _, d := range ds {
		f := parseFax(t, d)
		i := slices.Index(ids, f.ID)
		if want := fmt.Sprintf("%s/own/%d", e.rcvURL, i); d.URL != want || !d.Verified {
			t.Errorf("fax %d: delivered to %s (verified %v), want %s", f.ID, d.URL, d.Verified, want)
		}
	}
}
