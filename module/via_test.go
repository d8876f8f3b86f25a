package module

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	zapobserver "go.uber.org/zap/zaptest/observer"

	"github.com/faxhook/caddy-faxhook/module/profile"
	"github.com/faxhook/caddy-faxhook/module/profile/fax"
)

func receivedObj(id int64) profile.Object {
	return profile.Object{Fax: fax.Fax{ID: id, Direction: fax.DirectionReceived}}
}

// The via map holds at most max faxes (the oldest go first), forgets a via after the ttl, keeps
// only received faxes, and lets the faxes of one response share a via.
func TestViaCacheBoundedAndExpires(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	c := &viaCache{max: 3, ttl: time.Minute, now: func() time.Time { return now }}
	a, b := &Via{Root: "/a"}, &Via{Root: "/b"}
	sent := profile.Object{Fax: fax.Fax{ID: 9, Direction: fax.DirectionSent}}
	c.remember([]profile.Object{receivedObj(1), receivedObj(2), sent}, a)
	if c.get("1") != a || c.get("2") != a || c.get("9") != nil || c.len() != 2 {
		t.Fatalf("after a list: 1→%v 2→%v 9→%v, %d held", c.get("1"), c.get("2"), c.get("9"), c.len())
	}
	now = now.Add(30 * time.Second)
	c.remember([]profile.Object{receivedObj(3), receivedObj(4)}, b)
	if c.len() != 3 || c.get("1") != nil || c.get("2") != a || c.get("4") != b {
		t.Fatalf("bound of 3: %d held, 1→%v 2→%v 4→%v", c.len(), c.get("1"), c.get("2"), c.get("4"))
	}
	now = now.Add(31 * time.Second) // fax 2's via is 61s old
	if c.get("2") != nil || c.get("3") != b || c.len() != 2 {
		t.Fatalf("expiry: 2→%v 3→%v, %d held", c.get("2"), c.get("3"), c.len())
	}
	c.remember([]profile.Object{receivedObj(3)}, a) // seen again: refreshed
	now = now.Add(59 * time.Second)
	if c.get("3") != a || c.get("4") != nil {
		t.Fatalf("refresh: 3→%v 4→%v", c.get("3"), c.get("4"))
	}
	var z viaCache // the zero value works, with the default bounds
	for i := range maxVias + 5 {
		z.remember([]profile.Object{receivedObj(int64(i))}, a)
	}
	if z.len() != maxVias || z.get("0") != nil || z.get(fmt.Sprint(maxVias+4)) != a {
		t.Fatalf("default bound: %d held", z.len())
	}
}

// ViaOf takes the listener, Host, API root (as the client sent the path, before a prefix strip)
// and credential headers of a status or list request, and nothing for other routes.
func TestViaOf(t *testing.T) {
	local := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8443}
	req := func(method, target string) *http.Request {
		r := httptest.NewRequest(method, target, nil)
		r.Host = "fax.example:8443"
		r.SetBasicAuth("key", "s3cr3t")
		r.Header.Set("X-Api-Key", "k2")
		r.Header.Set("User-Agent", "ua")
		return r.WithContext(context.WithValue(r.Context(), http.LocalAddrContextKey, net.Addr(local)))
	}
	p := profile.PhaxioV21
	v := ViaOf(req("GET", "/v2.1/faxes/5"), p, profile.RouteStatus, "5")
	if v == nil || v.LocalAddr != "127.0.0.1:8443" || v.Root != "/v2.1" || v.Host != "fax.example:8443" || v.TLS ||
		v.Credentials.Get("Authorization") == "" || v.Credentials.Get("X-Api-Key") != "k2" || v.Credentials.Get("User-Agent") != "" {
		t.Fatalf("status via %+v", v)
	}
	if s := fmt.Sprint(v); strings.Contains(s, "s3cr3t") || strings.Contains(s, "a2V5OnMzY3IzdA") {
		t.Fatalf("String shows the credentials: %s", s)
	}
	if v := ViaOf(req("GET", "/faxes?direction=received"), p, profile.RouteList, ""); v == nil || v.Root != "" {
		t.Fatalf("list via %+v", v)
	}
	if v := ViaOf(req("POST", "/v2.1/faxes"), p, profile.RouteSend, ""); v != nil {
		t.Fatalf("send via %+v", v)
	}
	// handle_path /api/* stripped /api before faxhook: the root is the client's.
	r := req("GET", "/v2.1/faxes")
	orig := *r
	u := *r.URL
	u.Path = "/api/v2.1/faxes"
	orig.URL = &u
	r = r.WithContext(context.WithValue(r.Context(), caddyhttp.OriginalRequestCtxKey, orig))
	if v := ViaOf(r, p, profile.RouteList, ""); v == nil || v.Root != "/api/v2.1" {
		t.Fatalf("stripped prefix via %+v", v)
	}
	// No TCP listener (a unix socket): no via.
	r = httptest.NewRequest("GET", "/faxes/5", nil)
	if v := ViaOf(r, p, profile.RouteStatus, "5"); v != nil {
		t.Fatalf("without a local TCP address: %+v", v)
	}
}

// Without a poll upstream, the preparer fetches a received fax's PDF from the listener that
// served the request which revealed it, with its Host and credentials; those stay in memory:
// not in the job, the store's files or the log. A refusal (401) or a forgotten via sends the
// webhook without the PDF with one log entry; a 5xx fails the attempt for the retry ladder.
func TestPrepareFetchesPDFThroughClientRoute(t *testing.T) {
	const secret = "hunter2-very-secret"
	pdf := []byte("%PDF-1.4 received through the route")
	var mu sync.Mutex
	status := http.StatusOK
	var asked []string
	site := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, pass, _ := r.BasicAuth()
		mu.Lock()
		asked = append(asked, r.Method+" "+r.Host+" "+r.URL.Path+" "+user+":"+pass)
		st := status
		mu.Unlock()
		w.WriteHeader(st)
		if st == http.StatusOK {
			w.Write(pdf)
		}
	}))
	defer site.Close()

	e := newTestEngine(t, settings{receivedURLs: []string{"https://hooks.example/received"}, maxFileSize: 1 << 20})
	core, logs := zapobserver.New(zap.DebugLevel)
	e.log.Store(zap.New(core))

	// What the handler's ViaOf builds for GET /v2.1/faxes/5 on this listener.
	r := httptest.NewRequest("GET", "/v2.1/faxes/5", nil)
	r.Host = "fax.example"
	r.SetBasicAuth("key", secret)
	ln := site.Listener.Addr()
	r = r.WithContext(context.WithValue(r.Context(), http.LocalAddrContextKey, ln))
	via := ViaOf(r, profile.PhaxioV21, profile.RouteStatus, "5")
	if via == nil {
		t.Fatal("no via")
	}
	f := fax.Fax{ID: 5, Direction: fax.DirectionReceived, Status: fax.StatusSuccess, NumPages: 1,
		CreatedAt: "2026-01-01T10:00:00Z", CompletedAt: fax.Str(time.Now().Format(time.RFC3339Nano))}
	objs := []profile.Object{{Fax: f, Full: true}}
	e.vias.remember(objs, via)
	record(t, e, &Observation{Faxes: objs})
	jobs := allJobs(t, e)
	if len(jobs) != 1 {
		t.Fatalf("jobs %+v", jobs)
	}
	web := jobs[0]

	p, err := e.delivery.prepare(context.Background(), web)
	if err != nil || len(p.Files) != 1 || !bytes.Equal(p.Files[0].Data, pdf) {
		t.Fatalf("prepared: %+v, %v", p, err)
	}
	mu.Lock()
	if len(asked) != 1 || asked[0] != "GET fax.example /v2.1/faxes/5/file key:"+secret {
		t.Fatalf("the site was asked %q", asked)
	}
	mu.Unlock()

	status = http.StatusBadGateway
	if _, err := e.delivery.prepare(context.Background(), web); err == nil || !strings.Contains(err.Error(), "502") {
		t.Fatalf("5xx: want an error for the retry ladder, got %v", err)
	}

	status = http.StatusUnauthorized
	if p, err := e.delivery.prepare(context.Background(), web); err != nil || p.Files != nil {
		t.Fatalf("401: %+v, %v", p, err)
	}
	if n := logs.FilterMessage(msgViaRefused).Len(); n != 1 {
		t.Fatalf("%d %q log entries, want 1", n, msgViaRefused)
	}

	e.vias = viaCache{} // forgotten (expired, or a restart)
	if p, err := e.delivery.prepare(context.Background(), web); err != nil || p.Files != nil {
		t.Fatalf("no via: %+v, %v", p, err)
	}
	if n := logs.FilterMessage(msgNoVia).Len(); n != 1 {
		t.Fatalf("%d %q log entries, want 1", n, msgNoVia)
	}

	// The credentials are nowhere but in memory: not in the job, the store's files or the log.
	b64 := "a2V5Omh1bnRlcjItdmVyeS1zZWNyZXQ" // base64 of key:secret, as in the Authorization header
	for _, j := range allJobs(t, e) {
		raw, _ := json.Marshal(j)
		if bytes.Contains(raw, []byte(secret)) || bytes.Contains(raw, []byte(b64)) {
			t.Fatalf("the job holds the credentials: %s", raw)
		}
	}
	if err := e.store.Close(); err != nil {
		t.Fatal(err)
	}
	filepath.Walk(e.dir, func(path string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return err
		}
		raw, err := os.ReadFile(path)
		if err == nil && (bytes.Contains(raw, []byte(secret)) || bytes.Contains(raw, []byte(b64))) {
			t.Errorf("store file %s holds the credentials", path)
		}
		return nil
	})
	for _, entry := range logs.All() {
		line := entry.Message
		for k, v := range entry.ContextMap() {
			line += fmt.Sprintf(" %s=%v", k, v)
		}
		if strings.Contains(line, secret) || strings.Contains(line, b64) {
			t.Fatalf("the log holds the credentials: %s", line)
		}
	}
	if logs.Len() < 2 {
		t.Fatalf("expected the log entries, got %d", logs.Len())
	}
}

// The handler describes requests (and so keeps clients' credentials) only when no poll
// upstream is configured.
func TestWantsViaOnlyWithoutPollUpstream(t *testing.T) {
	if !(&App{}).WantsVia() {
		t.Fatal("no poll upstream: want vias")
	}
	if (&App{poll: &pollSettings{upstream: "http://fax.example/v2.1"}}).WantsVia() {
		t.Fatal("with a poll upstream: want no vias")
	}
}

// Over TLS, the fetch dials the listener's address and asks for the client's server name; the
// certificate (here httptest's, for no such name) is not verified.
func TestViaFetchTLS(t *testing.T) {
	var sni, host string
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sni, host = r.TLS.ServerName, r.Host
		w.Write([]byte("%PDF"))
	}))
	defer srv.Close()
	v := &Via{LocalAddr: srv.Listener.Addr().String(), TLS: true, Host: "fax.example:8443", Root: "/v2.1"}
	body, status, err := v.fetch(context.Background(), profile.Request{Method: "GET", Path: "/faxes/1/file"}, 1<<20)
	if err != nil || status != 200 || string(body) != "%PDF" || sni != "fax.example" || host != "fax.example:8443" {
		t.Fatalf("fetch: %q %d %v; server saw SNI %q, Host %q", body, status, err, sni, host)
	}
}
