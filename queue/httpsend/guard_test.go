package httpsend

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/faxhook/caddy-faxhook/queue"
	"github.com/faxhook/caddy-faxhook/queue/ssrf"
)

// countingServer is a loopback receiver that counts the requests it gets.
func countingServer(t *testing.T, h http.HandlerFunc) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if h != nil {
			h(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv, &hits
}

func allowLoopback(t *testing.T) *ssrf.Guard {
	t.Helper()
	allow, err := ssrf.ParseAllow([]string{"127.0.0.0/8", "::1"})
	if err != nil {
		t.Fatal(err)
	}
	return ssrf.New(allow)
}

// wantBlocked checks that res is a permanent failure caused by the guard.
func wantBlocked(t *testing.T, res queue.Result, what string) {
	t.Helper()
	if res.Err == nil || !res.Permanent || res.Status != 0 {
		t.Fatalf("%s: Send = %+v, want a permanent failure", what, res)
	}
	if !errors.Is(res.Err, ssrf.ErrBlocked) {
		t.Errorf("%s: Err %q does not match ssrf.ErrBlocked", what, res.Err)
	}
	if msg := res.Err.Error(); !strings.Contains(msg, "loopback; blocked (allow it with allow_private)") || !strings.HasPrefix(msg, "posting webhook to ") {
		t.Errorf("%s: Err = %q", what, msg)
	}
}

func TestGuardBlocksLoopbackLiteral(t *testing.T) {
	srv, hits := countingServer(t, nil)
	s := New(Options{Token: testToken, Guard: ssrf.New(nil)})
	defer s.CloseIdleConnections()
	for _, u := range []string{
		srv.URL + "/hook",
		strings.Replace(srv.URL, "127.0.0.1", "[::ffff:127.0.0.1]", 1) + "/hook",
	} {
		wantBlocked(t, s.Send(context.Background(), newJob(u)), u)
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("the blocked receiver got %d requests", n)
	}
}

func TestGuardAllowListDelivers(t *testing.T) {
	srv, hits := countingServer(t, nil)
	s := New(Options{Token: testToken, Guard: allowLoopback(t)})
	defer s.CloseIdleConnections()
	res := s.Send(context.Background(), newJob(srv.URL+"/hook"))
	if res.Err != nil || res.Status != 200 {
		t.Fatalf("Send = %+v", res)
	}
	// A host name resolving to an allowed address is delivered too.
	u := strings.Replace(srv.URL, "127.0.0.1", "localhost", 1)
	if res := s.Send(context.Background(), newJob(u+"/hook")); res.Err != nil || res.Status != 200 {
		t.Fatalf("Send to localhost = %+v", res)
	}
	if n := hits.Load(); n != 2 {
		t.Errorf("receiver got %d requests, want 2", n)
	}
}

// TestGuardBlocksNameResolvingToLoopback sends to "localhost": only the dial-time check, on the
// address the name resolved to, can catch it.
func TestGuardBlocksNameResolvingToLoopback(t *testing.T) {
	addrs, err := net.DefaultResolver.LookupNetIP(context.Background(), "ip", "localhost")
	if err != nil || len(addrs) == 0 {
		t.Skipf("localhost does not resolve here: %v", err)
	}
	for _, a := range addrs {
		if !a.Unmap().IsLoopback() {
			t.Skipf("localhost resolves to %v here", addrs)
		}
	}
	srv, hits := countingServer(t, nil)
	u := strings.Replace(srv.URL, "127.0.0.1", "localhost", 1) + "/hook"
	s := New(Options{Token: testToken, Guard: ssrf.New(nil)})
	defer s.CloseIdleConnections()
	res := s.Send(context.Background(), newJob(u))
	wantBlocked(t, res, u)
	if msg := res.Err.Error(); !strings.Contains(msg, "http://localhost:") {
		t.Errorf("Err %q does not name the URL", msg)
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("the blocked receiver got %d requests", n)
	}
}

// TestGuardRedirectToPrivateNotFollowed: a receiver answering 302 to a private address fails the
// attempt and the target gets nothing. The first receiver is on loopback too, so the guard here
// allows loopback; that the target would have been blocked without the allow list is checked on
// its address.
func TestGuardRedirectToPrivateNotFollowed(t *testing.T) {
	target, targetHits := countingServer(t, nil)
	redirector, _ := countingServer(t, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target.URL+"/internal", http.StatusFound)
	})
	s := New(Options{Token: testToken, Guard: allowLoopback(t)})
	defer s.CloseIdleConnections()
	res := s.Send(context.Background(), newJob(redirector.URL+"/hook"))
	if res.Err == nil || res.Status != http.StatusFound {
		t.Fatalf("Send = %+v, want a failed attempt with status 302", res)
	}
	if !strings.Contains(res.Err.Error(), "redirect to "+target.URL+"/internal not followed") {
		t.Errorf("Err = %q", res.Err)
	}
	if n := targetHits.Load(); n != 0 {
		t.Errorf("the redirect target got %d requests", n)
	}
	tu, _ := url.Parse(target.URL)
	if err := ssrf.New(nil).Check(netip.MustParseAddr(tu.Hostname())); !errors.Is(err, ssrf.ErrBlocked) {
		t.Errorf("the redirect target %s would not have been blocked: %v", tu.Hostname(), err)
	}
}

func TestGuardIgnoresProxyAndKeepsCustomTransport(t *testing.T) {
	s := New(Options{Guard: ssrf.New(nil)})
	tr, ok := s.client.Transport.(*http.Transport)
	if !ok {
		t.Fatalf("transport is %T", s.client.Transport)
	}
	if tr.Proxy != nil {
		t.Error("a guarded sender uses a proxy: the guard would only see the proxy's address")
	}
	if tr.DialContext == nil {
		t.Error("a guarded sender does not dial through the guard")
	}
	if tr := New(Options{}).client.Transport.(*http.Transport); tr.Proxy == nil {
		t.Error("an unguarded sender stopped honouring the proxy environment")
	}

	// A custom transport is used as given, but literal IP URLs are still refused before it runs.
	var calls atomic.Int32
	s = New(Options{Guard: ssrf.New(nil), Transport: roundTripFunc(func(*http.Request) (*http.Response, error) {
		calls.Add(1)
		return nil, errors.New("no network expected")
	})})
	for _, u := range []string{"http://127.0.0.1/x", "http://[::1]:8080/x", "https://169.254.169.254/latest/meta-data/", "http://[fe80::1%25eth0]/x"} {
		res := s.Send(context.Background(), newJob(u))
		if res.Err == nil || !res.Permanent || !errors.Is(res.Err, ssrf.ErrBlocked) {
			t.Errorf("%s: Send = %+v, want blocked", u, res)
		}
	}
	if n := calls.Load(); n != 0 {
		t.Errorf("%d requests reached the transport", n)
	}
}

// TestNoGuardUnchanged: without a guard, loopback receivers are reached as before.
func TestNoGuardUnchanged(t *testing.T) {
	srv, hits := countingServer(t, nil)
	s := New(Options{})
	defer s.CloseIdleConnections()
	if res := s.Send(context.Background(), newJob(srv.URL)); res.Err != nil {
		t.Fatalf("Send = %+v", res)
	}
	if hits.Load() != 1 {
		t.Error("receiver not reached")
	}
}

// TestNumericHostFormsRefused: a host that ends in a number but is not a dotted-decimal IPv4
// address (inet_aton forms: decimal, hex, octal, short dotted) is a malformed URL, refused with a
// permanent failure before any network I/O, with or without a guard; names and standard IP
// literals are not affected.
func TestNumericHostFormsRefused(t *testing.T) {
	srv, hits := countingServer(t, nil)
	port := strings.TrimPrefix(srv.URL, "http://127.0.0.1:")
	for _, host := range []string{
		"2130706433", "2130706434", "0x7f.1", "0x7f.2", "0x7f000001", "0X7F000001", "017700000001",
		"0177.0.0.1", "127.1", "127.0.1", "127.0.0.01", "127.0.0.1.", "1.2.3.4.5", "256.0.0.1", "0x", "a.example.123",
	} {
		u := "http://" + host + ":" + port + "/hook"
		for _, g := range []*ssrf.Guard{nil, ssrf.New(nil)} {
			res := New(Options{Guard: g}).Send(context.Background(), newJob(u))
			if res.Err == nil || !res.Permanent || !strings.Contains(res.Err.Error(), fmt.Sprintf("host %q is numeric but not a dotted-decimal IPv4 address", host)) {
				t.Errorf("%s (guard %v): Send = %+v, want a permanent failure naming the numeric host", u, g != nil, res)
			}
		}
		if _, err := ParseURL(u); err == nil {
			t.Errorf("ParseURL(%s) accepted it", u)
		}
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("the receiver got %d requests through numeric hosts", n)
	}
	for _, ok := range []string{
		"http://127.0.0.1/x", "http://[::1]/x", "http://[::ffff:127.0.0.1]/x", "https://hooks.example.com/x", "http://a1.example/x",
		"http://1a/x", "http://0xdead.beef/x", "http://123.example/x", "http://example.com./x", "http://0x7g/x",
	} {
		if _, err := ParseURL(ok); err != nil {
			t.Errorf("ParseURL(%s) = %v, want it accepted", ok, err)
		}
	}
	// The receiver is still reached through its dotted-decimal address.
	if res := New(Options{}).Send(context.Background(), newJob(srv.URL+"/hook")); res.Err != nil || hits.Load() != 1 {
		t.Fatalf("Send to %s = %+v", srv.URL, res)
	}
}
