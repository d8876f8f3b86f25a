package capture

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/textproto"
	"strings"
	"testing"
	"time"
)

func wantJSON(status int, h http.Header) bool {
	return status == http.StatusOK && strings.HasPrefix(h.Get("Content-Type"), "application/json")
}

func TestWriterCapturesWithinLimit(t *testing.T) {
	rec := httptest.NewRecorder()
	w := NewWriter(rec, 64, wantJSON)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", "13")
	w.WriteHeader(http.StatusOK)
	if _, err := w.Write([]byte(`{"a":`)); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte(`12345}`)); err != nil {
		t.Fatal(err)
	}
	if got, want := rec.Body.String(), `{"a":12345}`; got != want {
		t.Fatalf("client got %q, want %q", got, want)
	}
	if !w.Captured() || w.Truncated() || w.Status() != 200 {
		t.Fatalf("Captured=%v Truncated=%v Status=%d", w.Captured(), w.Truncated(), w.Status())
	}
	if got := string(w.Bytes()); got != `{"a":12345}` {
		t.Fatalf("Bytes = %q", got)
	}
	if rec.Header().Get("Content-Length") != "13" {
		t.Fatal("Content-Length was touched")
	}
	w.Release()
	if w.Bytes() != nil {
		t.Fatal("Bytes after Release should be nil")
	}
	w.Release() // idempotent
}

func TestWriterTruncates(t *testing.T) {
	rec := httptest.NewRecorder()
	w := NewWriter(rec, 10, func(int, http.Header) bool { return true })
	body := []byte("0123456789abcdefghij")
	for i := 0; i < len(body); i += 3 {
		if _, err := w.Write(body[i:min(i+3, len(body))]); err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(rec.Body.Bytes(), body) {
		t.Fatalf("client got %q", rec.Body.Bytes())
	}
	if !w.Truncated() || string(w.Bytes()) != "0123456789" {
		t.Fatalf("Truncated=%v Bytes=%q", w.Truncated(), w.Bytes())
	}
	w.Release()
}

func TestWriterExactLimitNotTruncated(t *testing.T) {
	w := NewWriter(httptest.NewRecorder(), 4, func(int, http.Header) bool { return true })
	_, _ = w.Write([]byte("abcd"))
	if w.Truncated() || string(w.Bytes()) != "abcd" {
		t.Fatalf("Truncated=%v Bytes=%q", w.Truncated(), w.Bytes())
	}
	_, _ = w.Write(nil)
	if w.Truncated() {
		t.Fatal("empty write truncated")
	}
	_, _ = w.Write([]byte("e"))
	if !w.Truncated() {
		t.Fatal("not truncated after limit+1 bytes")
	}
}

func TestWriterNotWanted(t *testing.T) {
	for name, want := range map[string]func(int, http.Header) bool{
		"nil":   nil,
		"false": func(int, http.Header) bool { return false },
		"json":  wantJSON, // Content-Type is text/plain below
	} {
		t.Run(name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			w := NewWriter(rec, 1<<20, want)
			w.Header().Set("Content-Type", "text/plain")
			_, _ = io.WriteString(w, "hello")
			if rec.Body.String() != "hello" || w.Captured() || w.Bytes() != nil || w.Truncated() {
				t.Fatalf("body=%q Captured=%v Bytes=%q", rec.Body.String(), w.Captured(), w.Bytes())
			}
			if w.Status() != http.StatusOK {
				t.Fatalf("implicit status = %d", w.Status())
			}
			w.Release()
		})
	}
}

func TestWriterImplicit200AndWantSeesHeaders(t *testing.T) {
	rec := httptest.NewRecorder()
	var gotStatus int
	var gotCT string
	w := NewWriter(rec, 100, func(s int, h http.Header) bool {
		gotStatus, gotCT = s, h.Get("Content-Type")
		return true
	})
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte("{}"))
	if gotStatus != 200 || gotCT != "application/json" || rec.Code != 200 {
		t.Fatalf("want saw %d %q; recorder code %d", gotStatus, gotCT, rec.Code)
	}
	w.WriteHeader(http.StatusTeapot) // superfluous: forwarded, not recorded
	if w.Status() != 200 {
		t.Fatalf("Status changed to %d", w.Status())
	}
}

func TestWriterNoWrites(t *testing.T) {
	w := NewWriter(httptest.NewRecorder(), 100, func(int, http.Header) bool { return true })
	if w.Status() != 0 || w.Captured() || w.Bytes() != nil {
		t.Fatal("fresh writer not empty")
	}
	w.Release()
}

// callLog is a minimal ResponseWriter that records what reached it.
type callLog struct {
	h        http.Header
	statuses []int
	body     bytes.Buffer
	readFrom int
}

func (c *callLog) Header() http.Header {
	if c.h == nil {
		c.h = http.Header{}
	}
	return c.h
}
func (c *callLog) WriteHeader(s int)           { c.statuses = append(c.statuses, s) }
func (c *callLog) Write(p []byte) (int, error) { return c.body.Write(p) }

type readFromLog struct{ callLog }

func (c *readFromLog) ReadFrom(r io.Reader) (int64, error) {
	c.readFrom++
	return c.body.ReadFrom(r)
}

func TestWriter1xxPassThrough(t *testing.T) {
	under := &callLog{}
	calls := 0
	w := NewWriter(under, 100, func(s int, _ http.Header) bool { calls++; return s == 201 })
	w.WriteHeader(http.StatusEarlyHints)
	w.WriteHeader(http.StatusContinue)
	if w.Status() != 0 || calls != 0 {
		t.Fatalf("1xx recorded: status %d, want calls %d", w.Status(), calls)
	}
	w.WriteHeader(http.StatusCreated)
	_, _ = w.Write([]byte("x"))
	if got := under.statuses; len(got) != 3 || got[0] != 103 || got[1] != 100 || got[2] != 201 {
		t.Fatalf("underlying statuses %v", got)
	}
	if w.Status() != 201 || !w.Captured() || calls != 1 || string(w.Bytes()) != "x" {
		t.Fatalf("Status=%d Captured=%v calls=%d", w.Status(), w.Captured(), calls)
	}
}

func TestWriterReadFrom(t *testing.T) {
	payload := bytes.Repeat([]byte("0123456789"), 10000)

	t.Run("capturing copies through Write", func(t *testing.T) {
		under := &readFromLog{}
		w := NewWriter(under, 1000, func(int, http.Header) bool { return true })
		// A LimitReader has no WriteTo, so io.Copy takes w.ReadFrom.
		n, err := io.Copy(w, io.LimitReader(bytes.NewReader(payload), 1<<30))
		if err != nil || n != int64(len(payload)) {
			t.Fatalf("n=%d err=%v", n, err)
		}
		if under.readFrom != 0 {
			t.Fatal("underlying ReadFrom used while capturing")
		}
		if !bytes.Equal(under.body.Bytes(), payload) || !bytes.Equal(w.Bytes(), payload[:1000]) || !w.Truncated() {
			t.Fatalf("client %d bytes, captured %d, truncated %v", under.body.Len(), len(w.Bytes()), w.Truncated())
		}
		if w.Status() != 200 || len(under.statuses) != 1 {
			t.Fatalf("status %d, underlying %v", w.Status(), under.statuses)
		}
	})

	t.Run("not capturing forwards to ReaderFrom", func(t *testing.T) {
		under := &readFromLog{}
		w := NewWriter(under, 1000, nil)
		n, err := w.ReadFrom(bytes.NewReader(payload))
		if err != nil || n != int64(len(payload)) {
			t.Fatalf("n=%d err=%v", n, err)
		}
		if under.readFrom != 1 || !bytes.Equal(under.body.Bytes(), payload) || w.Bytes() != nil {
			t.Fatalf("readFrom calls %d, body %d bytes", under.readFrom, under.body.Len())
		}
		if w.Status() != 200 {
			t.Fatalf("status %d", w.Status())
		}
	})
}

// TestWriterRealServer runs a Writer inside a real http.Server: flushing through
// http.NewResponseController must reach the connection before the handler returns, SetWriteDeadline
// must find the server's writer through Unwrap, and the client gets the bytes unchanged.
func TestWriterRealServer(t *testing.T) {
	got := make(chan string, 1)
	var (
		captured  []byte
		deadlineE error
		status    int
	)
	done := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		defer close(done)
		w := NewWriter(rw, 1<<10, wantJSON)
		defer w.Release()
		rc := http.NewResponseController(w)
		deadlineE = rc.SetWriteDeadline(time.Now().Add(10 * time.Second)) // via Unwrap
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Link", "</style.css>; rel=preload")
		w.WriteHeader(http.StatusEarlyHints)
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, `{"part":1}`)
		if err := rc.Flush(); err != nil {
			t.Errorf("Flush: %v", err)
		}
		// The client must see the first part before we write the second one.
		select {
		case s := <-got:
			if s != `{"part":1}` {
				t.Errorf("client read %q before second write", s)
			}
		case <-time.After(10 * time.Second):
			t.Error("flush did not reach the client")
		}
		_, _ = io.WriteString(w, `{"part":2}`)
		captured = bytes.Clone(w.Bytes())
		status = w.Status()
	}))
	defer srv.Close()

	var hints []int
	ctx := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{
		Got1xxResponse: func(code int, _ textproto.MIMEHeader) error { hints = append(hints, code); return nil },
	})
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
	res, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	first := make([]byte, len(`{"part":1}`))
	if _, err := io.ReadFull(res.Body, first); err != nil {
		t.Fatal(err)
	}
	got <- string(first)
	rest, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	<-done
	if string(first)+string(rest) != `{"part":1}{"part":2}` {
		t.Fatalf("client body %q%q", first, rest)
	}
	if deadlineE != nil {
		t.Fatalf("SetWriteDeadline through Unwrap: %v", deadlineE)
	}
	if string(captured) != `{"part":1}{"part":2}` || status != 200 {
		t.Fatalf("captured %q status %d", captured, status)
	}
	if len(hints) != 1 || hints[0] != 103 {
		t.Fatalf("1xx seen by client: %v", hints)
	}
}

// TestWriterHijack checks that hijacking through http.ResponseController reaches the server's
// writer through Unwrap.
func TestWriterHijack(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		w := NewWriter(rw, 100, func(int, http.Header) bool { return true })
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Errorf("Hijack: %v", err)
			return
		}
		defer conn.Close()
		_, _ = brw.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi")
		_ = brw.Flush()
	}))
	defer srv.Close()
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_, _ = io.WriteString(conn, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	if string(b) != "hi" {
		t.Fatalf("hijacked body %q", b)
	}
}

// TestWriterReadFromRealServer sends a file-like reader through a real server both captured and
// uncaptured (the uncaptured path uses the server's ReaderFrom).
func TestWriterReadFromRealServer(t *testing.T) {
	payload := bytes.Repeat([]byte("abcdefgh"), 1<<14)
	for _, capture := range []bool{true, false} {
		srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
			w := NewWriter(rw, 1<<20, func(int, http.Header) bool { return capture })
			defer w.Release()
			if _, err := io.Copy(w, io.LimitReader(bytes.NewReader(payload), int64(len(payload)))); err != nil {
				t.Error(err)
			}
			if capture && !bytes.Equal(w.Bytes(), payload) {
				t.Error("captured copy differs")
			}
		}))
		res, err := srv.Client().Get(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		srv.Close()
		if !bytes.Equal(b, payload) {
			t.Fatalf("capture=%v: client got %d bytes", capture, len(b))
		}
	}
}

func TestWriterUnwrap(t *testing.T) {
	rec := httptest.NewRecorder()
	w := NewWriter(rec, 1, nil)
	if w.Unwrap() != rec {
		t.Fatal("Unwrap does not return the wrapped writer")
	}
	// httptest.ResponseRecorder implements Flush; reaching it proves the chain works.
	if err := http.NewResponseController(w).Flush(); err != nil {
		t.Fatal(err)
	}
	if !rec.Flushed || w.Status() != 200 {
		t.Fatalf("Flushed=%v status=%d", rec.Flushed, w.Status())
	}
	// A writer that cannot flush reports ErrNotSupported rather than silently succeeding.
	w2 := NewWriter(&callLog{}, 1, nil)
	if err := http.NewResponseController(w2).Flush(); !errors.Is(err, http.ErrNotSupported) {
		t.Fatalf("Flush on non-flusher: %v", err)
	}
}

// discardWriter is a cheap http.ResponseWriter for benchmarks.
type discardWriter struct{ h http.Header }

func (d *discardWriter) Header() http.Header         { return d.h }
func (d *discardWriter) WriteHeader(int)             {}
func (d *discardWriter) Write(p []byte) (int, error) { return len(p), nil }

func BenchmarkWriter(b *testing.B) {
	body := bytes.Repeat([]byte(`{"id":1234,"status":"success"},`), (1<<20)/31+1)[:1<<20]
	chunk := 32 << 10
	under := &discardWriter{h: http.Header{"Content-Type": {"application/json"}}}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		w := NewWriter(under, 1<<20, wantJSON)
		w.WriteHeader(http.StatusOK)
		for i := 0; i < len(body); i += chunk {
			_, _ = w.Write(body[i : i+chunk])
		}
		if len(w.Bytes()) != len(body) || w.Truncated() {
			b.Fatal("capture incomplete")
		}
		w.Release()
	}
}
