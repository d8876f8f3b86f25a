package bench

import (
	"bytes"
	"hash/maphash"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/faxhook/caddy-faxhook/handler/capture"
	"github.com/faxhook/caddy-faxhook/handler/extract"
	"github.com/faxhook/caddy-faxhook/handler/formtap"
)

// The benchmarks below isolate the pieces of faxhook's work that the proxy benchmark's paths
// exercise, on the same bodies, so that a ratio missed in Run can be traced to its cause:
//
//	go test -run '^$' -bench . -benchmem ./examples/bench/

// lfOnlyUpload is a multipart send whose 1 MiB file part has line feeds but not a single CR byte
// (a text-only PDF or PostScript file with Unix line ends): the worst case for the multipart
// scanner's search for a partial delimiter at the end of each chunk.
func lfOnlyUpload() ([]byte, string) {
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	mw.WriteField("to[]", "+15558670000")
	mw.WriteField("callback_url", "http://127.0.0.1:1/cb")
	fw, _ := mw.CreateFormFile("file", "document.pdf")
	line := []byte("0 0 612 792 re f BT /F1 12 Tf 72 712 Td (faxhook benchmark text line) Tj ET\n")
	for n := 0; n < uploadSize; n += len(line) {
		fw.Write(line)
	}
	mw.Close()
	return b.Bytes(), mw.FormDataContentType()
}

// BenchmarkFormtap reads a 1 MiB multipart send through formtap in 32 KiB reads, as
// reverse_proxy does, against the same read without the tap.
func BenchmarkFormtap(b *testing.B) {
	binary, ctBinary := sendBody("http://127.0.0.1:1/cb")
	lf, ctLF := lfOnlyUpload()
	for _, c := range []struct {
		name string
		body []byte
		ct   string
		tap  bool
	}{
		{"binary-pdf/no-tap", binary, ctBinary, false},
		{"binary-pdf/tap", binary, ctBinary, true},
		{"lf-only-text/tap", lf, ctLF, true},
	} {
		b.Run(c.name, func(b *testing.B) {
			buf := make([]byte, 32<<10)
			b.SetBytes(int64(len(c.body)))
			for b.Loop() {
				r := httptest.NewRequest(http.MethodPost, "/v2.1/faxes", bytes.NewReader(c.body))
				r.Header.Set("Content-Type", c.ct)
				var tap *formtap.Tap
				if c.tap {
					tap = formtap.Attach(r, []string{"callback_url"}, 4096)
				}
				for {
					if _, err := r.Body.Read(buf); err != nil {
						break
					}
				}
				r.Body.Close()
				if c.tap {
					tap.Finish()
					if got := tap.Fields()["callback_url"]; len(got) != 1 {
						b.Fatalf("callback_url = %q", got)
					}
				}
			}
		})
	}
}

// BenchmarkCapture tees the response bodies of paths (b) and (c) in 32 KiB writes.
func BenchmarkCapture(b *testing.B) {
	u := newUpstream()
	for _, c := range []struct {
		name string
		body []byte
	}{{"get", u.getBody}, {"list", u.list}} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(c.body)))
			want := func(int, http.Header) bool { return true }
			for b.Loop() {
				w := capture.NewWriter(discardWriter{}, 1<<20, want)
				for p := c.body; len(p) > 0; {
					n := min(len(p), 32<<10)
					w.Write(p[:n])
					p = p[n:]
				}
				w.Release()
			}
		})
	}
}

// BenchmarkExtract parses the response bodies of paths (b) and (c) as faxhook's observation
// worker does, once per response.
func BenchmarkExtract(b *testing.B) {
	u := newUpstream()
	for _, c := range []struct {
		name string
		body []byte
	}{{"get", u.getBody}, {"list", u.list}} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(c.body)))
			for b.Loop() {
				if _, err := extract.Phaxio(c.body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// discardWriter is a ResponseWriter that drops everything.
type discardWriter struct{}

func (discardWriter) Header() http.Header         { return http.Header{} }
func (discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (discardWriter) WriteHeader(int)             {}

// BenchmarkHashBody hashes the captured bodies (hash/maphash), the cost of comparing a response
// with the last one seen for the same request before deciding to parse it.
func BenchmarkHashBody(b *testing.B) {
	u := newUpstream()
	seed := maphash.MakeSeed()
	for _, c := range []struct {
		name string
		body []byte
	}{{"get", u.getBody}, {"list", u.list}} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(c.body)))
			var sum uint64
			for b.Loop() {
				sum += maphash.Bytes(seed, c.body)
			}
			_ = sum
		})
	}
}
