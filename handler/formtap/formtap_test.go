package formtap

import (
	"bytes"
	"crypto/sha256"
	"io"
	"maps"
	"math/rand/v2"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

var names = []string{"callback_url", "to", "to[]"}

// chunkReader returns at most a pseudo-random number of bytes per Read, so that every scanner
// state meets its input split at arbitrary points.
type chunkReader struct {
	r   io.Reader
	rnd *rand.Rand
	max int
}

func (c *chunkReader) Read(p []byte) (int, error) {
	n := 1 + c.rnd.IntN(c.max)
	if n < len(p) {
		p = p[:n]
	}
	return c.r.Read(p)
}

// closeRecorder remembers whether the original body was closed.
type closeRecorder struct {
	io.Reader
	closed bool
}

func (c *closeRecorder) Close() error { c.closed = true; return nil }

func newReq(ct string, body []byte, contentLength int64) (*http.Request, *closeRecorder) {
	rc := &closeRecorder{Reader: bytes.NewReader(body)}
	r := httptest.NewRequest(http.MethodPost, "/v2.1/faxes", nil)
	r.Body = rc
	r.ContentLength = contentLength
	r.Header.Set("Content-Type", ct)
	return r, rc
}

// readThrough reads r.Body with chunk sizes up to maxChunk and returns what it read.
func readThrough(t testing.TB, r *http.Request, seed uint64, maxChunk int) []byte {
	t.Helper()
	got, err := io.ReadAll(&chunkReader{r: r.Body, rnd: rand.New(rand.NewPCG(seed, 1)), max: maxChunk})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Body.Close(); err != nil {
		t.Fatal(err)
	}
	return got
}

func TestURLEncoded(t *testing.T) {
	body := "a=1&callback_url=https%3A%2F%2Fx.example%2Fcb%3Fa%3D1%26b%3D2&to=%2B15558675309" +
		"&to%5B%5D=x&to[]=y+z&callback%5Furl=second&bad;pair=1&callback_url=a%zz&to=&to&file=" +
		strings.Repeat("A", 5000)
	want := map[string][]string{
		"callback_url": {"https://x.example/cb?a=1&b=2", "second"},
		"to":           {"+15558675309", "", ""},
		"to[]":         {"x", "y z"},
	}
	for _, maxChunk := range []int{1, 2, 3, 7, 64, 1 << 20} {
		for _, cl := range []int64{int64(len(body)), -1} {
			r, rc := newReq("application/x-www-form-urlencoded; charset=utf-8", []byte(body), cl)
			tap := Attach(r, names, 100)
			if tap == nil {
				t.Fatal("nil tap")
			}
			if r.ContentLength != cl {
				t.Fatal("ContentLength changed")
			}
			got := readThrough(t, r, uint64(maxChunk), maxChunk)
			if string(got) != body {
				t.Fatal("body bytes changed")
			}
			if !rc.closed {
				t.Fatal("original Close not called")
			}
			if f := tap.Fields(); !reflect.DeepEqual(f, want) {
				t.Fatalf("chunk %d: Fields = %q\nwant %q", maxChunk, f, want)
			}
			if !tap.Complete() {
				t.Fatal("not complete")
			}
		}
	}
}

func TestURLEncodedTruncatedValue(t *testing.T) {
	long := "https://example.com/" + strings.Repeat("x", 100)
	body := "callback_url=" + url.QueryEscape(long) + "&to=%2B1&callback_url=%41%42"
	r, _ := newReq("application/x-www-form-urlencoded", []byte(body), int64(len(body)))
	tap := Attach(r, names, 50)
	readThrough(t, r, 1, 5)
	if f := tap.Fields(); !reflect.DeepEqual(f, map[string][]string{"callback_url": {"AB"}, "to": {"+1"}}) {
		t.Fatalf("Fields = %q", f)
	}
	if !tap.Truncated("callback_url") || tap.Truncated("to") {
		t.Fatal("truncation not recorded")
	}
	if got := tap.TruncatedNames(); !reflect.DeepEqual(got, []string{"callback_url"}) {
		t.Fatalf("TruncatedNames = %q", got)
	}
	// Exactly maxValue unescaped bytes is fine, even when the raw form is three times longer.
	exact := strings.Repeat("/", 50)
	body = "callback_url=" + url.QueryEscape(exact)
	r, _ = newReq("application/x-www-form-urlencoded", []byte(body), -1)
	tap = Attach(r, names, 50)
	readThrough(t, r, 2, 3)
	if f := tap.Fields(); len(f["callback_url"]) != 1 || f["callback_url"][0] != exact {
		t.Fatalf("Fields = %q", f)
	}
}

// TestURLEncodedExactLength checks that a consumer reading exactly ContentLength bytes, without
// asking for io.EOF, still commits the last pair.
func TestURLEncodedExactLength(t *testing.T) {
	body := "to=%2B1&callback_url=https%3A%2F%2Fa.example%2F"
	r, _ := newReq("application/x-www-form-urlencoded", []byte(body), int64(len(body)))
	tap := Attach(r, names, 100)
	buf := make([]byte, len(body))
	if _, err := io.ReadFull(r.Body, buf); err != nil {
		t.Fatal(err)
	}
	done := make(chan map[string][]string)
	go func() { done <- tap.Fields() }()
	select {
	case f := <-done:
		if f["callback_url"][0] != "https://a.example/" {
			t.Fatalf("Fields = %q", f)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Fields blocked after ContentLength bytes")
	}
}

func TestOtherContentTypesUntouched(t *testing.T) {
	for _, ct := range []string{"", "application/json", "text/plain", "multipart/mixed; boundary=x", "multipart/form-data; boundary=\"unterminated"} {
		r, rc := newReq(ct, []byte("callback_url=x"), 14)
		if tap := Attach(r, names, 100); tap != nil {
			t.Fatalf("%q: tap attached", ct)
		}
		if r.Body != io.ReadCloser(rc) {
			t.Fatalf("%q: body replaced", ct)
		}
	}
	// Methods of a nil tap are safe.
	var tap *Tap
	tap.Finish()
	if tap.Fields() != nil || tap.Complete() || tap.Truncated("x") || tap.TruncatedNames() != nil {
		t.Fatal("nil tap not empty")
	}
}

func TestNoBody(t *testing.T) {
	for _, b := range []io.ReadCloser{http.NoBody, nil} {
		r := httptest.NewRequest(http.MethodPost, "/", nil)
		r.Body = b
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		tap := Attach(r, names, 100)
		if tap == nil || r.Body != b {
			t.Fatal("NoBody/nil body must stay and yield a tap")
		}
		if len(tap.Fields()) != 0 || !tap.Complete() {
			t.Fatal("empty form not complete")
		}
	}
}

func TestFinishUnreadBody(t *testing.T) {
	pr, pw := io.Pipe()
	defer pw.Close()
	r := httptest.NewRequest(http.MethodPost, "/", nil)
	r.Body = pr
	r.ContentLength = -1
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	tap := Attach(r, names, 100)
	go func() { _, _ = io.WriteString(pw, "to=%2B1&callback_url=https%3A%2F%2Fpartial") }()
	buf := make([]byte, 64)
	n, _ := io.ReadAtLeast(r.Body, buf, len("to=%2B1&callback_url=https%3A%2F%2Fpartial"))
	if n == 0 {
		t.Fatal("nothing read")
	}
	// The upstream gives up; the rest of the body never arrives.
	done := make(chan struct{})
	go func() {
		tap.Finish()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Finish blocked")
	}
	f := tap.Fields()
	if !reflect.DeepEqual(f, map[string][]string{"to": {"+1"}}) || tap.Complete() {
		t.Fatalf("Fields = %q, complete %v (the unfinished value must be dropped)", f, tap.Complete())
	}
	tap.Finish() // idempotent
	// Reading after Finish still passes bytes through.
	go func() { _, _ = io.WriteString(pw, "more") }()
	n, err := r.Body.Read(buf)
	if err != nil || string(buf[:n]) != "more" {
		t.Fatalf("read after Finish: %q %v", buf[:n], err)
	}
}

func TestCloseFinishes(t *testing.T) {
	body := "callback_url=x&to=1"
	r, rc := newReq("application/x-www-form-urlencoded", []byte(body), int64(len(body)))
	tap := Attach(r, names, 100)
	buf := make([]byte, 15)
	_, _ = io.ReadFull(r.Body, buf)
	_ = r.Body.Close()
	if !rc.closed {
		t.Fatal("original Close not called")
	}
	if f := tap.Fields(); !reflect.DeepEqual(f, map[string][]string{"callback_url": {"x"}}) || tap.Complete() {
		t.Fatalf("Fields = %q", f)
	}
}

// buildMultipart writes a form with small fields around a file part.
func buildMultipart(t testing.TB, w io.Writer, boundary string, before, after map[string]string, file io.Reader) {
	t.Helper()
	if err := writeMultipart(w, boundary, before, after, file); err != nil {
		t.Fatal(err)
	}
}

func writeMultipart(w io.Writer, boundary string, before, after map[string]string, file io.Reader) error {
	mw := multipart.NewWriter(w)
	if err := mw.SetBoundary(boundary); err != nil {
		return err
	}
	write := func(m map[string]string) error {
		for _, k := range slices.Sorted(maps.Keys(m)) {
			if err := mw.WriteField(k, m[k]); err != nil {
				return err
			}
		}
		return nil
	}
	if err := write(before); err != nil {
		return err
	}
	if file != nil {
		fw, err := mw.CreateFormFile("file", "fax.pdf")
		if err != nil {
			return err
		}
		if _, err := io.Copy(fw, file); err != nil {
			return err
		}
	}
	if err := write(after); err != nil {
		return err
	}
	return mw.Close()
}

func TestMultipartSmall(t *testing.T) {
	const boundary = "X-PHAXIO-BOUNDARY"
	file := bytes.Repeat([]byte("%PDF-1.4\r\n--X-PHAXIO-BOUNDAR\r\n--X-PHAXIO-BOUNDARYx\r\n"), 300)
	for _, order := range []string{"before", "after"} {
		var buf bytes.Buffer
		fields := map[string]string{"callback_url": "https://cb.example/hook?x=1", "to": "+15558675309", "to[]": "+15551234567", "header_text": "hi"}
		if order == "before" {
			buildMultipart(t, &buf, boundary, fields, nil, bytes.NewReader(file))
		} else {
			buildMultipart(t, &buf, boundary, nil, fields, bytes.NewReader(file))
		}
		body := buf.Bytes()
		for _, maxChunk := range []int{1, 3, 17, 4096, 1 << 20} {
			r, _ := newReq("multipart/form-data; boundary="+boundary, body, int64(len(body)))
			tap := Attach(r, names, 200)
			got := readThrough(t, r, uint64(maxChunk), maxChunk)
			if !bytes.Equal(got, body) {
				t.Fatal("body bytes changed")
			}
			want := map[string][]string{"callback_url": {"https://cb.example/hook?x=1"}, "to": {"+15558675309"}, "to[]": {"+15551234567"}}
			if f := tap.Fields(); !reflect.DeepEqual(f, want) || !tap.Complete() {
				t.Fatalf("%s chunk %d: Fields = %q complete %v", order, maxChunk, f, tap.Complete())
			}
		}
	}
}

func TestMultipartEdgeCases(t *testing.T) {
	cases := []struct {
		name     string
		body     string
		want     map[string][]string
		complete bool
	}{
		{
			name: "preamble, padding, LF line ends",
			body: "preamble --b\n--bx\n--b \t\nContent-Disposition: form-data; name=\"callback_url\"\n\nhttps://a/\n--b\n" +
				"Content-Disposition: form-data; name=to\n\n+1\n--b--\nepilogue",
			want:     map[string][]string{"callback_url": {"https://a/"}, "to": {"+1"}},
			complete: true,
		},
		{
			name: "file part named like a field is not a value; empty filename is",
			body: "--b\r\nContent-Disposition: form-data; name=\"callback_url\"; filename=\"cb.txt\"\r\n\r\nfile\r\n" +
				"--b\r\nContent-Disposition: form-data; name=\"callback_url\"; filename=\"\"\r\n\r\nvalue\r\n--b--",
			want:     map[string][]string{"callback_url": {"value"}},
			complete: true,
		},
		{
			name: "quoted-printable",
			body: "--b\r\nContent-Disposition: form-data; name=callback_url\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n" +
				"https://a.example/=3Fx=3D1=\r\n&y\r\n--b--\r\n",
			want:     map[string][]string{"callback_url": {"https://a.example/?x=1&y"}},
			complete: true,
		},
		{
			name:     "empty part directly followed by boundary",
			body:     "--b\r\nContent-Disposition: form-data; name=to\r\n\r\n--b\r\nContent-Disposition: form-data; name=to\r\n\r\n\r\n--b--",
			want:     map[string][]string{"to": {"", ""}},
			complete: true,
		},
		{
			name:     "no final boundary",
			body:     "--b\r\nContent-Disposition: form-data; name=to\r\n\r\n+1\r\n--b\r\nContent-Disposition: form-data; name=callback_url\r\n\r\nhttps://cut",
			want:     map[string][]string{"to": {"+1"}},
			complete: false,
		},
		{
			name:     "garbage after a part",
			body:     "--b\r\nContent-Disposition: form-data; name=to\r\n\r\n+1\r\n--b junk\r\nContent-Disposition: form-data; name=callback_url\r\n\r\nx\r\n--b--",
			want:     map[string][]string{"to": {"+1"}},
			complete: false,
		},
		{
			name:     "value too long",
			body:     "--b\r\nContent-Disposition: form-data; name=callback_url\r\n\r\n" + strings.Repeat("x", 101) + "\r\n--b--",
			want:     map[string][]string{},
			complete: true,
		},
		{
			name:     "no boundary at all",
			body:     "callback_url=x",
			want:     map[string][]string{},
			complete: false,
		},
	}
	for _, c := range cases {
		for _, maxChunk := range []int{1, 2, 5, 1 << 20} {
			r, _ := newReq("multipart/form-data; boundary=b", []byte(c.body), -1)
			tap := Attach(r, names, 100)
			got := readThrough(t, r, uint64(maxChunk), maxChunk)
			if string(got) != c.body {
				t.Fatalf("%s: body changed", c.name)
			}
			f := tap.Fields()
			if len(f) == 0 && len(c.want) == 0 {
				f = c.want
			}
			if !reflect.DeepEqual(f, c.want) || tap.Complete() != c.complete {
				t.Fatalf("%s (chunk %d): Fields = %q complete %v; want %q %v", c.name, maxChunk, f, tap.Complete(), c.want, c.complete)
			}
			// Go's parser agrees on complete forms.
			if c.complete {
				checkAgainstGo(t, "multipart/form-data; boundary=b", []byte(c.body), tap, 100)
			}
		}
	}
	r, _ := newReq("multipart/form-data; boundary=b", []byte("--b\r\nContent-Disposition: form-data; name=callback_url\r\n\r\n"+strings.Repeat("x", 101)+"\r\n--b--"), -1)
	tap := Attach(r, names, 100)
	readThrough(t, r, 1, 9)
	if !tap.Truncated("callback_url") {
		t.Fatal("long multipart value not recorded as truncated")
	}
}

// patternReader yields n pseudo-random bytes without holding them.
type patternReader struct {
	rnd *rand.ChaCha8
	n   int64
}

func (p *patternReader) Read(b []byte) (int, error) {
	if p.n <= 0 {
		return 0, io.EOF
	}
	if int64(len(b)) > p.n {
		b = b[:p.n]
	}
	_, _ = p.rnd.Read(b)
	p.n -= int64(len(b))
	return len(b), nil
}

// TestMultipartLargeFileStreams sends a 50 MiB file part through an io.Pipe with callback_url
// before and after it: the consumer must read identical bytes (hashed on both sides), the fields
// must be found, and the heap must not grow with the file.
func TestMultipartLargeFileStreams(t *testing.T) {
	const size = 50 << 20
	for _, order := range []string{"before", "after"} {
		t.Run(order, func(t *testing.T) {
			const boundary = "----faxhookBoundary7MA4YWxkTrZu0gW"
			pr, pw := io.Pipe()
			sent := sha256.New()
			fields := map[string]string{"callback_url": "https://cb.example/" + order, "to": "+15558675309"}
			go func() {
				w := io.MultiWriter(pw, sent)
				file := &patternReader{rnd: rand.NewChaCha8([32]byte{1}), n: size}
				var err error
				if order == "before" {
					err = writeMultipart(w, boundary, fields, nil, file)
				} else {
					err = writeMultipart(w, boundary, nil, fields, file)
				}
				pw.CloseWithError(err) // nil: io.EOF for the reader

			}()
			r := httptest.NewRequest(http.MethodPost, "/v2.1/faxes", nil)
			r.Body = pr
			r.ContentLength = -1
			r.Header.Set("Content-Type", "multipart/form-data; boundary="+boundary)

			runtime.GC()
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			base := ms.HeapInuse
			var peak uint64

			tap := Attach(r, names, 2048)
			got := sha256.New()
			buf := make([]byte, 32<<10)
			var total int64
			for i := 0; ; i++ {
				n, err := r.Body.Read(buf)
				got.Write(buf[:n])
				total += int64(n)
				if i%256 == 0 {
					runtime.ReadMemStats(&ms)
					peak = max(peak, ms.HeapInuse)
				}
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			_ = r.Body.Close()
			if total < size || !bytes.Equal(got.Sum(nil), sent.Sum(nil)) {
				t.Fatalf("consumer read %d bytes with a different hash", total)
			}
			want := map[string][]string{"callback_url": {"https://cb.example/" + order}, "to": {"+15558675309"}}
			if f := tap.Fields(); !reflect.DeepEqual(f, want) || !tap.Complete() {
				t.Fatalf("Fields = %q complete %v", f, tap.Complete())
			}
			if peak > base && peak-base > 16<<20 {
				t.Fatalf("heap grew by %d MiB while streaming", (peak-base)>>20)
			}
			t.Logf("heap growth while streaming %d MiB: %d KiB", size>>20, int64(peak-base)/1024)
		})
	}
}

// TestNoAllocsPerReadInFileBody checks that scanning the body of a file part allocates nothing.
func TestNoAllocsPerReadInFileBody(t *testing.T) {
	const boundary = "bnd"
	head := "--bnd\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f.pdf\"\r\n\r\n"
	chunk := bytes.Repeat([]byte("0123456789abcdef\r\n-"), 1700)
	r := httptest.NewRequest(http.MethodPost, "/", nil)
	rd := &loopReader{head: []byte(head), chunk: chunk}
	r.Body = io.NopCloser(rd)
	r.ContentLength = -1
	r.Header.Set("Content-Type", "multipart/form-data; boundary="+boundary)
	tap := Attach(r, names, 100)
	buf := make([]byte, 32<<10)
	_, _ = r.Body.Read(buf) // headers
	allocs := testing.AllocsPerRun(200, func() { _, _ = r.Body.Read(buf) })
	if allocs > 0 {
		t.Fatalf("%.1f allocations per Read in a file body", allocs)
	}
	tap.Finish()
}

// loopReader yields head once, then chunk forever.
type loopReader struct {
	head, chunk []byte
	off         int
}

func (l *loopReader) Read(p []byte) (int, error) {
	if len(l.head) > 0 {
		n := copy(p, l.head)
		l.head = l.head[n:]
		return n, nil
	}
	n := copy(p, l.chunk[l.off:])
	l.off = (l.off + n) % len(l.chunk)
	return n, nil
}

// checkAgainstGo compares the tap's fields with what Go's own parsers find in body, when they
// accept it.
func checkAgainstGo(t testing.TB, ct string, body []byte, tap *Tap, maxValue int) {
	t.Helper()
	var values url.Values
	if strings.HasPrefix(ct, "application/x-www-form-urlencoded") {
		if strings.Count(string(body), "&") >= maxPairs {
			return
		}
		values, _ = url.ParseQuery(string(body))
	} else {
		boundary := ct[strings.Index(ct, "boundary=")+len("boundary="):]
		form, err := multipart.NewReader(bytes.NewReader(body), boundary).ReadForm(32 << 20)
		if err != nil {
			return
		}
		defer form.RemoveAll()
		values = form.Value
		if !tap.Complete() && len(body) < maxHeader {
			t.Fatalf("Go parsed the form but the tap is incomplete: %q", body)
		}
	}
	if !tap.Complete() {
		return
	}
	want := map[string][]string{}
	for _, n := range names {
		for _, v := range values[n] {
			if len(v) <= maxValue {
				want[n] = append(want[n], v)
			}
		}
	}
	if got := tap.Fields(); !reflect.DeepEqual(got, want) && !(len(got) == 0 && len(want) == 0) {
		t.Fatalf("tap %q, Go %q, body %q", got, want, body)
	}
}

func FuzzTap(f *testing.F) {
	var mp bytes.Buffer
	buildMultipart(f, &mp, "b", map[string]string{"callback_url": "https://a/"}, map[string]string{"to": "+1"}, strings.NewReader("%PDF\r\n--b-\r\n--"))
	f.Add(uint8(1), mp.Bytes(), uint8(7))
	f.Add(uint8(0), []byte("to=%2B1&callback_url=https%3A%2F%2Fa%2F&to[]=x;y&to%5B%5D=z"), uint8(3))
	f.Add(uint8(1), []byte("pre\n--b\nContent-Disposition: form-data; name=to\n\n1\n--b--"), uint8(1))
	f.Add(uint8(2), []byte("--b\r\nContent-Transfer-Encoding: quoted-printable\r\nContent-Disposition: form-data; name=to\r\n\r\n=41=\r\nB\r\n--b--"), uint8(2))
	f.Add(uint8(3), []byte(`{"to":"+1"}`), uint8(9))
	f.Add(uint8(1), []byte("--b\n"), uint8(0)) // Go ends the form cleanly at EOF in a header block
	cts := []string{
		"application/x-www-form-urlencoded",
		"multipart/form-data; boundary=b",
		"multipart/form-data; boundary=\"b\"; charset=utf-8",
		"application/json",
		"multipart/form-data",
	}
	f.Fuzz(func(t *testing.T, ctSel uint8, body []byte, chunk uint8) {
		ct := cts[int(ctSel)%len(cts)]
		r, _ := newReq(ct, body, int64(len(body)))
		if ctSel&0x80 != 0 {
			r.ContentLength = -1
		}
		tap := Attach(r, names, 16)
		got := readThrough(t, r, uint64(chunk), 1+int(chunk)%64)
		if !bytes.Equal(got, body) {
			t.Fatalf("bytes changed: %q -> %q", body, got)
		}
		if tap == nil {
			return
		}
		all := tap.Fields()
		// AttachFirst sees the same bytes and agrees on the first value of callback_url, the
		// field it stops at: the first value Attach kept, unless a longer-than-maxValue value
		// came first, which leaves AttachFirst without one (and Truncated).
		r, _ = newReq(ct, body, int64(len(body)))
		first := AttachFirst(r, []string{"callback_url"}, 16)
		if got := readThrough(t, r, uint64(chunk), 1+int(chunk)%64); !bytes.Equal(got, body) {
			t.Fatalf("AttachFirst: bytes changed: %q -> %q", body, got)
		}
		f, a := first.Fields()["callback_url"], all["callback_url"]
		switch long := first.Truncated("callback_url"); {
		case len(f) > 1 || len(f) == 1 && long:
			t.Fatalf("AttachFirst: callback_url %q, truncated %v", f, long)
		case len(f) == 1 && (len(a) == 0 || f[0] != a[0]):
			t.Fatalf("AttachFirst: callback_url %q, Attach %q", f, a)
		case len(f) == 0 && !long && len(a) != 0:
			t.Fatalf("AttachFirst: no callback_url, Attach %q", a)
		case long && !tap.Truncated("callback_url"):
			t.Fatal("AttachFirst: callback_url truncated, Attach: not")
		}
		if ct == cts[4] {
			return // no boundary
		}
		ctForGo := ct
		if ct == cts[2] {
			ctForGo = "multipart/form-data; boundary=b"
		}
		checkAgainstGo(t, ctForGo, body, tap, 16)
	})
}

func BenchmarkTapMultipart(b *testing.B) {
	var buf bytes.Buffer
	buildMultipart(b, &buf, "----faxhookBoundary", map[string]string{"to": "+15558675309"},
		map[string]string{"callback_url": "https://cb.example/"}, bytes.NewReader(bytes.Repeat([]byte("%PDF\r\n"), 1<<18)))
	body := buf.Bytes()
	rd := bytes.NewReader(body)
	cp := make([]byte, 32<<10)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		rd.Reset(body)
		r := &http.Request{Header: http.Header{"Content-Type": {"multipart/form-data; boundary=----faxhookBoundary"}}, Body: io.NopCloser(rd), ContentLength: int64(len(body))}
		tap := Attach(r, names, 2048)
		if _, err := io.CopyBuffer(io.Discard, r.Body, cp); err != nil {
			b.Fatal(err)
		}
		if len(tap.Fields()["callback_url"]) != 1 {
			b.Fatal("callback_url not found")
		}
	}
}

// AttachFirst stops scanning once every name has a value: the first one, as r.FormValue would
// return. The tap is done right after the callback_url part, long before the file part ends,
// and the upstream still reads every byte unchanged.
func TestAttachFirstStopsAfterTheFirstValue(t *testing.T) {
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	mw.WriteField("to[]", "+15558670000")
	mw.WriteField("callback_url", "https://example.com/first")
	fw, _ := mw.CreateFormFile("file", "document.pdf")
	fw.Write(bytes.Repeat([]byte("%PDF\r\n--not-the-boundary\r\n"), 40000))
	mw.WriteField("callback_url", "https://example.com/second")
	mw.Close()
	body := b.Bytes()

	r, _ := newReq(mw.FormDataContentType(), body, int64(len(body)))
	tap := AttachFirst(r, []string{"callback_url"}, 4096)
	head := make([]byte, bytes.Index(body, []byte("Content-Type: application/octet-stream"))+1)
	if _, err := io.ReadFull(r.Body, head); err != nil {
		t.Fatal(err)
	}
	done := make(chan map[string][]string, 1)
	go func() { done <- tap.Fields() }()
	select {
	case f := <-done:
		if !reflect.DeepEqual(f, map[string][]string{"callback_url": {"https://example.com/first"}}) {
			t.Fatalf("Fields = %q", f)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the tap kept scanning after callback_url had its value")
	}
	if tap.Complete() {
		t.Error("Complete after a scan that stopped early")
	}
	rest, err := io.ReadAll(r.Body)
	if err != nil {
		t.Fatal(err)
	}
	if got := append(head, rest...); !bytes.Equal(got, body) {
		t.Fatal("the body changed after the tap stopped")
	}

	// A callback_url after the file is still found; Attach (not First) keeps every value.
	r, _ = newReq(mw.FormDataContentType(), body, int64(len(body)))
	all := Attach(r, []string{"callback_url", "missing"}, 4096)
	readThrough(t, r, 7, 64<<10)
	if f := all.Fields()["callback_url"]; len(f) != 2 || f[1] != "https://example.com/second" {
		t.Fatalf("Attach: callback_url = %q, want both values", f)
	}
	// Renaming the first callback_url leaves only the one after the file.
	late := bytes.Replace(body, []byte(`name="callback_url"`), []byte(`name="callback_url_x"`), 1)
	r, _ = newReq(mw.FormDataContentType(), late, int64(len(late)))
	tap = AttachFirst(r, []string{"callback_url"}, 4096)
	readThrough(t, r, 8, 64<<10)
	if f := tap.Fields()["callback_url"]; len(f) != 1 || f[0] != "https://example.com/second" {
		t.Fatalf("AttachFirst with callback_url after the file: %q", f)
	}
}

// AttachFirst takes the first value of a field even when it is too long to keep: the field then
// has no value (r.FormValue would return the long one, so a later value must not stand in), and
// TruncatedLength tells how long it was. The scan stops there, as after any first value.
func TestAttachFirstOverLongFirstValue(t *testing.T) {
	long := "https://example.com/" + strings.Repeat("a", 5000)
	var mp bytes.Buffer
	mw := multipart.NewWriter(&mp)
	mw.WriteField("callback_url", long)
	mw.WriteField("callback_url", "https://example.com/second")
	mw.Close()
	bodies := map[string][]byte{
		"application/x-www-form-urlencoded": []byte("callback_url=" + url.QueryEscape(long) + "&callback_url=https%3A%2F%2Fexample.com%2Fsecond"),
		mw.FormDataContentType():            mp.Bytes(),
	}
	for ct, body := range bodies {
		r, _ := newReq(ct, body, int64(len(body)))
		tap := AttachFirst(r, []string{"callback_url"}, 4096)
		readThrough(t, r, 5, 512)
		if f := tap.Fields(); len(f) != 0 {
			t.Errorf("%s: Fields = %.60q, want none: the first callback_url is too long", ct, f)
		}
		if n := tap.TruncatedLength("callback_url"); n < len(long) {
			t.Errorf("%s: TruncatedLength = %d, want at least %d", ct, n, len(long))
		}
		if !tap.Truncated("callback_url") {
			t.Errorf("%s: not Truncated", ct)
		}
		// Attach keeps every short value and reports the long one.
		r, _ = newReq(ct, body, int64(len(body)))
		all := Attach(r, []string{"callback_url"}, 4096)
		readThrough(t, r, 6, 512)
		if f := all.Fields()["callback_url"]; !slices.Equal(f, []string{"https://example.com/second"}) || !all.Truncated("callback_url") {
			t.Errorf("%s: Attach: Fields %.60q, Truncated %v", ct, f, all.Truncated("callback_url"))
		}
	}
}
