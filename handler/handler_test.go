package handler

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/faxhook/caddy-faxhook/module"
)

// FuzzServeHTTP sends fuzzed upstream responses (body, content type, encoding, status) through
// the handler on fax routes: the client must receive the upstream's bytes unchanged, and nothing
// may panic.
func FuzzServeHTTP(f *testing.F) {
	f.Add([]byte(`{"success":true,"data":{"id":1,"status":"success","direction":"sent"}}`), "application/json", "", 200, "GET", "/v2.1/faxes/1")
	f.Add([]byte(`{"success":true,"data":[{"id":"2"},{"id":3,"recipients":[{"phone_number":"+1","x_current_page":2}]}]}`), "application/json", "", 200, "GET", "/v2.1/faxes")
	f.Add([]byte("\x1f\x8b\x08\x00garbage"), "application/json", "gzip", 200, "GET", "/v2.1/faxes/9")
	f.Add([]byte(`{"success":true,"data":{"id":5}}`), "application/json", "", 200, "POST", "/v2.1/faxes")
	f.Add([]byte(`{"data":{"phone_number":"+15551230001","callback_url":"http://x"}}`), "application/json", "", 200, "POST", "/v2.1/phone_numbers")
	f.Add([]byte("not json at all"), "text/plain", "br", 500, "GET", "/v2.1/faxes/1")
	f.Fuzz(func(t *testing.T, body []byte, ctype, enc string, status int, method, path string) {
		if status < 200 || status > 599 || !strings.HasPrefix(path, "/") || strings.ContainsAny(path, " \r\n\t?#%") ||
			(method != "GET" && method != "POST") || strings.ContainsAny(ctype+enc, "\r\n\x00") {
			return
		}
		if _, err := url.ParseRequestURI(path); err != nil {
			return
		}
		if (status == http.StatusNoContent || status == http.StatusNotModified) && len(body) > 0 {
			return // HTTP allows no body here: net/http refuses to write it, so no upstream sends one
		}
		h := &Handler{MaxCapture: 4096, log: zap.NewNop(), app: new(module.App)}
		next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
			io.Copy(io.Discard, r.Body)
			if ctype != "" {
				w.Header().Set("Content-Type", ctype)
			}
			if enc != "" {
				w.Header().Set("Content-Encoding", enc)
			}
			w.Header().Set("Content-Length", strconv.Itoa(len(body)))
			w.WriteHeader(status)
			w.Write(body)
			return nil
		})
		req := httptest.NewRequest(method, path, strings.NewReader("callback_url=http%3A%2F%2Fexample.com%2Fhook"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		rec := httptest.NewRecorder()
		if err := h.ServeHTTP(rec, req, next); err != nil {
			t.Fatalf("ServeHTTP: %v", err)
		}
		if rec.Code != status || !bytes.Equal(rec.Body.Bytes(), body) {
			t.Fatalf("client got %d %q, upstream sent %d %q", rec.Code, rec.Body.Bytes(), status, body)
		}
	})
}
