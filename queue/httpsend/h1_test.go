package httpsend

import (
	"bufio"
	"bytes"
	"context"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// connCounter counts the connections a test server accepted and closed, and the requests it
// answered.
type connCounter struct {
	conns, closed, reqs atomic.Int32
}

func (c *connCounter) server(t *testing.T, h http.HandlerFunc, configure ...func(*http.Server)) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.reqs.Add(1)
		io.Copy(io.Discard, r.Body)
		if h != nil {
			h(w, r)
		}
	}))
	srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		switch st {
		case http.StateNew:
			c.conns.Add(1)
		case http.StateClosed:
			c.closed.Add(1)
		}
	}
	for _, f := range configure {
		f(srv.Config)
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv
}

// A receiver that closes keep-alive connections after a short idle time is not a failed attempt:
// the webhook goes out once more on a new connection, and the receiver gets it once.
func TestSendRetriesOnceWhenReceiverClosedIdleConnection(t *testing.T) {
	var c connCounter
	srv := c.server(t, nil, func(hs *http.Server) { hs.IdleTimeout = 50 * time.Millisecond })
	s := New(Options{})
	defer s.CloseIdleConnections()
	for i := range 3 {
		if res := s.Send(context.Background(), newJob(srv.URL)); res.Err != nil || res.Status != 200 {
			t.Fatalf("attempt %d: %+v", i, res)
		}
		// The receiver closes the idle connection; the sender still holds it as idle.
		for deadline := time.Now().Add(5 * time.Second); c.closed.Load() < int32(i+1); time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("the receiver never closed connection %d", i+1)
			}
		}
	}
	if n := c.reqs.Load(); n != 3 {
		t.Errorf("receiver got %d requests for 3 webhooks", n)
	}
	if n := c.conns.Load(); n != 3 {
		t.Errorf("%d connections, want 3 (one per webhook, the closed one not used twice)", n)
	}
}

// Keep-alive connections are reused, except after "Connection: close".
func TestSendReusesConnectionsUnlessClosed(t *testing.T) {
	var c connCounter
	var closeNext atomic.Bool
	srv := c.server(t, func(w http.ResponseWriter, r *http.Request) {
		if closeNext.Load() {
			w.Header().Set("Connection", "close")
		}
	})
	s := New(Options{})
	defer s.CloseIdleConnections()
	for i := range 3 {
		if res := s.Send(context.Background(), newJob(srv.URL)); res.Err != nil {
			t.Fatalf("attempt %d: %+v", i, res)
		}
	}
	if n := c.conns.Load(); n != 1 {
		t.Fatalf("%d connections for 3 sequential webhooks, want 1", n)
	}
	closeNext.Store(true)
	for i := range 2 {
		if res := s.Send(context.Background(), newJob(srv.URL)); res.Err != nil {
			t.Fatalf("attempt %d with Connection: close: %+v", i, res)
		}
	}
	if n := c.conns.Load(); n != 2 {
		t.Errorf("%d connections, want 2: the first closed by the receiver after its answer, the second new", n)
	}
}

// Informational answers are passed over, chunked bodies are read, and the request carries Host,
// Content-Length and the webhook's headers.
func TestSendReadsChunkedAnswerAfterEarlyHints(t *testing.T) {
	var got *http.Request
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.Clone(context.Background())
		w.Header().Set("Link", "</style.css>; rel=preload")
		w.WriteHeader(http.StatusEarlyHints)
		w.WriteHeader(http.StatusAccepted)
		for range 3 {
			io.WriteString(w, "part;")
			w.(http.Flusher).Flush() // chunked: no Content-Length
		}
	}))
	defer srv.Close()
	s := New(Options{Token: "tok"})
	defer s.CloseIdleConnections()
	job := newJob(srv.URL + "/hook?a=b%20c")
	res := s.Send(context.Background(), job)
	if res.Err != nil || res.Status != http.StatusAccepted || res.Body != "part;part;part;" {
		t.Fatalf("Send = %+v", res)
	}
	body, _, _ := Encode(job)
	if got.Host != strings.TrimPrefix(srv.URL, "http://") || got.URL.RequestURI() != "/hook?a=b%20c" ||
		got.ContentLength != int64(len(body)) || got.Header.Get(HeaderEventID) != "evt-1" ||
		got.Header.Get("X-Phaxio-Signature") != Signature("tok", job) {
		t.Errorf("request: host %q, uri %q, length %d (want %d), headers %v", got.Host, got.URL.RequestURI(), got.ContentLength, len(body), got.Header)
	}
}

// An event ID that would break the request's header is a permanent failure, and nothing is sent.
func TestSendRefusesHeaderInjection(t *testing.T) {
	var c connCounter
	srv := c.server(t, nil)
	s := New(Options{})
	defer s.CloseIdleConnections()
	job := newJob(srv.URL)
	job.EventID = "evt-1\r\nX-Evil: 1"
	res := s.Send(context.Background(), job)
	if res.Err == nil || !res.Permanent || !strings.Contains(res.Err.Error(), HeaderEventID) {
		t.Errorf("Send = %+v, want a permanent failure naming %s", res, HeaderEventID)
	}
	if n := c.reqs.Load(); n != 0 {
		t.Errorf("receiver got %d requests", n)
	}
}

// A receiver that answers with garbage fails the attempt (retryable) and its connection is not
// reused.
func TestSendMalformedAnswer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var conns atomic.Int32
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				if _, err := http.ReadRequest(br); err != nil {
					return
				}
				io.WriteString(c, "HTTP/1.1 abc nonsense\r\n\r\n")
			}()
		}
	}()
	s := New(Options{})
	defer s.CloseIdleConnections()
	for i := range 2 {
		res := s.Send(context.Background(), newJob("http://"+ln.Addr().String()+"/hook"))
		if res.Err == nil || res.Permanent || res.Status != 0 {
			t.Fatalf("attempt %d: Send = %+v, want a retryable failure", i, res)
		}
	}
	if n := conns.Load(); n != 2 {
		t.Errorf("%d connections for 2 attempts, want 2", n)
	}
}

// The request on the wire is an HTTP/1.1 POST carrying exactly the webhook's header fields (no
// Accept-Encoding: the sender asks for no compression) and the encoded body, byte for byte,
// whether h1Client or net/http's client (used through a proxy) sends it.
func TestSendWritesExactlyTheWebhook(t *testing.T) {
	for _, viaNetHTTP := range []bool{false, true} {
		t.Run(map[bool]string{false: "h1", true: "net/http"}[viaNetHTTP], func(t *testing.T) {
			s := New(Options{Token: testToken})
			defer s.CloseIdleConnections()
			if viaNetHTTP {
				s.h1 = nil
			}
			testWireRequest(t, s)
		})
	}
}

func testWireRequest(t *testing.T, s *Sender) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan *http.Request, 1)
	gotBody := make(chan []byte, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		r, err := http.ReadRequest(bufio.NewReader(c))
		if err != nil {
			close(got)
			return
		}
		b, _ := io.ReadAll(r.Body)
		got <- r
		gotBody <- b
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
	}()
	job := newJob("http://user:pa%20ss@" + ln.Addr().String() + "/hook?x=1")
	if res := s.Send(context.Background(), job); res.Err != nil || res.Status != 200 {
		t.Fatalf("Send = %+v", res)
	}
	r := <-got
	if r == nil {
		t.Fatal("the receiver could not read the request")
	}
	wantBody, ct, _ := Encode(job)
	if r.Method != http.MethodPost || r.Proto != "HTTP/1.1" || r.RequestURI != "/hook?x=1" || r.Host != ln.Addr().String() {
		t.Errorf("request line %s %s %s, Host %s", r.Method, r.RequestURI, r.Proto, r.Host)
	}
	if b := <-gotBody; !bytes.Equal(b, wantBody) || r.ContentLength != int64(len(wantBody)) || len(r.TransferEncoding) != 0 {
		t.Errorf("body of %d bytes (Content-Length %d, Transfer-Encoding %v), want the %d encoded bytes", len(b), r.ContentLength, r.TransferEncoding, len(wantBody))
	}
	want := map[string]string{
		"Content-Type":       ct,
		"Content-Length":     "",
		"User-Agent":         DefaultUserAgent,
		HeaderEventID:        "evt-1",
		HeaderAttempt:        "1",
		"X-Phaxio-Signature": Signature(testToken, job),
		"Authorization":      "Basic dXNlcjpwYSBzcw==", // user:pa ss
	}
	names := slices.Sorted(func(yield func(string) bool) {
		for k := range r.Header {
			if !yield(k) {
				return
			}
		}
	})
	wantNames := slices.Sorted(func(yield func(string) bool) {
		for k := range want {
			if !yield(k) {
				return
			}
		}
	})
	if !slices.Equal(names, wantNames) {
		t.Errorf("header fields %v, want %v", names, wantNames)
	}
	for k, v := range want {
		if v != "" && (len(r.Header[k]) != 1 || r.Header[k][0] != v) {
			t.Errorf("%s: %q, want %q", k, r.Header[k], v)
		}
	}
}

// HTTPS webhooks go out over HTTP/1.1 even to a receiver that offers HTTP/2, on a kept
// connection, whichever client sends them.
func TestSendHTTPSOverHTTP1(t *testing.T) {
	for _, viaNetHTTP := range []bool{false, true} {
		t.Run(map[bool]string{false: "h1", true: "net/http"}[viaNetHTTP], func(t *testing.T) {
			var c connCounter
			srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				c.reqs.Add(1)
				io.Copy(io.Discard, r.Body)
				if r.ProtoMajor != 1 {
					w.WriteHeader(http.StatusHTTPVersionNotSupported)
				}
			}))
			srv.EnableHTTP2 = true
			srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
				if st == http.StateNew {
					c.conns.Add(1)
				}
			}
			srv.StartTLS()
			defer srv.Close()
			s := New(Options{})
			defer s.CloseIdleConnections()
			pool := x509.NewCertPool()
			pool.AddCert(srv.Certificate())
			s.h1.tlsConfig.RootCAs = pool
			s.client.Transport.(*http.Transport).TLSClientConfig.RootCAs = pool
			if viaNetHTTP {
				s.h1 = nil
			}
			for i := range 2 {
				if res := s.Send(context.Background(), newJob(srv.URL+"/hook")); res.Err != nil || res.Status != 200 {
					t.Fatalf("attempt %d: Send = %+v", i, res)
				}
			}
			if n := c.conns.Load(); n != 1 {
				t.Errorf("%d connections for 2 sequential webhooks, want 1", n)
			}
		})
	}
}

// At most MaxIdleConnsPerHost connections to one destination stay open after webhooks that ran
// at once; the others are closed.
func TestSendKeepsMaxIdleConnsPerHost(t *testing.T) {
	var c connCounter
	arrived := make(chan struct{}, 4)
	release := make(chan struct{})
	srv := c.server(t, func(http.ResponseWriter, *http.Request) {
		arrived <- struct{}{}
		<-release
	})
	s := New(Options{MaxIdleConnsPerHost: 2})
	defer s.CloseIdleConnections()
	results := make(chan error, 4)
	for range 4 {
		go func() { results <- s.Send(context.Background(), newJob(srv.URL)).Err }()
	}
	for range 4 {
		<-arrived // all four under way at once, on four connections
	}
	close(release)
	for range 4 {
		if err := <-results; err != nil {
			t.Fatal(err)
		}
	}
	idle := 0
	s.h1.mu.Lock()
	for _, l := range s.h1.idle { // one destination
		idle += len(l)
	}
	s.h1.mu.Unlock()
	if n := c.conns.Load(); n != 4 || idle != 2 {
		t.Errorf("%d connections, %d kept idle; want 4 and 2", n, idle)
	}
}
