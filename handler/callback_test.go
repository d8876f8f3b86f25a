package handler

import (
	"bytes"
	"encoding/json"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/faxhook/caddy-faxhook/handler/jsontap"
)

// callbackRequest is a send request in one of the body formats faxhook reads.
type callbackRequest struct {
	name   string
	query  string // raw query string of POST /v2.1/faxes
	ctype  string // "form", "multipart", "json" or a literal Content-Type
	fields []string
}

func (c callbackRequest) build(t *testing.T) *http.Request {
	t.Helper()
	var body []byte
	ct := c.ctype
	switch c.ctype {
	case "form":
		var b strings.Builder
		for i := 0; i < len(c.fields); i += 2 {
			if b.Len() > 0 {
				b.WriteByte('&')
			}
			b.WriteString(url.QueryEscape(c.fields[i]) + "=" + url.QueryEscape(c.fields[i+1]))
		}
		body, ct = []byte(b.String()), "application/x-www-form-urlencoded"
	case "multipart":
		var b bytes.Buffer
		mw := multipart.NewWriter(&b)
		for i := 0; i < len(c.fields); i += 2 {
			mw.WriteField(c.fields[i], c.fields[i+1])
		}
		fw, _ := mw.CreateFormFile("file", "document.pdf")
		fw.Write([]byte("%PDF-1.4 not really"))
		mw.Close()
		body, ct = b.Bytes(), mw.FormDataContentType()
	case "json":
		var b bytes.Buffer
		b.WriteByte('{')
		for i := 0; i < len(c.fields); i += 2 {
			if i > 0 {
				b.WriteByte(',')
			}
			k, _ := json.Marshal(c.fields[i])
			v, _ := json.Marshal(c.fields[i+1])
			b.Write(k)
			b.WriteByte(':')
			b.Write(v)
		}
		b.WriteByte('}')
		body, ct = b.Bytes(), "application/json"
	default:
		body = []byte(strings.Join(c.fields, ""))
	}
	target := "/v2.1/faxes"
	if c.query != "" {
		target += "?" + c.query
	}
	r := httptest.NewRequest(http.MethodPost, target, bytes.NewReader(body))
	r.Header.Set("Content-Type", ct)
	return r
}

// goUpstream returns the callback_url a Go fax service reads from r: r.FormValue for forms and
// requests without a body it parses, the decoded JSON body's field (encoding/json keeps the last
// of repeated keys), else r.FormValue, which then sees the query string alone.
func goUpstream(r *http.Request) string {
	if strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		var body struct {
			CallbackURL string `json:"callback_url"`
		}
		json.NewDecoder(r.Body).Decode(&body)
		if body.CallbackURL != "" {
			return body.CallbackURL
		}
		return r.URL.Query().Get("callback_url")
	}
	r.ParseMultipartForm(1 << 20)
	return r.FormValue("callback_url")
}

// TestCallbackIsTheOneTheUpstreamReads: for every body format, with repeated, over-long and
// query-string callback_urls, faxhook takes the callback URL that a Go upstream reading the same
// request takes, and none at all when that one is longer than MaxCallbackURL; an over-long one
// is logged with its length, never its text.
func TestCallbackIsTheOneTheUpstreamReads(t *testing.T) {
	long := "https://example.com/" + strings.Repeat("a", MaxCallbackURL)
	cases := []callbackRequest{
		{name: "form, first of two", ctype: "form", fields: []string{"callback_url", "https://a.example/1", "callback_url", "https://a.example/2"}},
		{name: "form, over-long first", ctype: "form", fields: []string{"callback_url", long, "callback_url", "https://a.example/2"}},
		{name: "form, over-long second", ctype: "form", fields: []string{"callback_url", "https://a.example/1", "callback_url", long}},
		{name: "multipart, first of two", ctype: "multipart", fields: []string{"callback_url", "https://a.example/1", "callback_url", "https://a.example/2"}},
		{name: "multipart, over-long first", ctype: "multipart", fields: []string{"to", "+15550100000", "callback_url", long, "callback_url", "https://a.example/2"}},
		{name: "json, last of two", ctype: "json", fields: []string{"callback_url", "https://a.example/1", "callback_url", "https://a.example/2"}},
		{name: "json, over-long last", ctype: "json", fields: []string{"callback_url", "https://a.example/1", "callback_url", long}},
		{name: "json, over-long first", ctype: "json", fields: []string{"callback_url", long, "callback_url", "https://a.example/2"}},
		{name: "query, form without one", query: "callback_url=https%3A%2F%2Fq.example%2F", ctype: "form", fields: []string{"to", "+15550100000"}},
		{name: "query, form with one", query: "callback_url=https%3A%2F%2Fq.example%2F", ctype: "form", fields: []string{"callback_url", "https://a.example/1"}},
		{name: "query, multipart without one", query: "callback_url=https%3A%2F%2Fq.example%2F", ctype: "multipart", fields: []string{"to", "+15550100000"}},
		{name: "query, multipart with one", query: "callback_url=https%3A%2F%2Fq.example%2F", ctype: "multipart", fields: []string{"callback_url", "https://a.example/1"}},
		{name: "query, json without one", query: "callback_url=https%3A%2F%2Fq.example%2F", ctype: "json", fields: []string{"to", "+15550100000"}},
		{name: "query, json with one", query: "callback_url=https%3A%2F%2Fq.example%2F", ctype: "json", fields: []string{"callback_url", "https://a.example/1"}},
		{name: "query, over-long, form without one", query: "callback_url=" + url.QueryEscape(long), ctype: "form", fields: []string{"to", "+15550100000"}},
		{name: "query, first of two", query: "callback_url=https%3A%2F%2Fq.example%2F1&callback_url=https%3A%2F%2Fq.example%2F2", ctype: "application/pdf", fields: []string{"%PDF"}},
		{name: "query, body of another type", query: "callback_url=https%3A%2F%2Fq.example%2F", ctype: "application/pdf", fields: []string{"%PDF"}},
		{name: "none", ctype: "form", fields: []string{"to", "+15550100000"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			core, logs := observer.New(zapcore.WarnLevel)
			h := &Handler{log: zap.New(core)}
			r := c.build(t)
			tap := jsontap.AttachRequest(r, []string{h.callbackField()}, MaxCallbackURL)
			want := goUpstream(r) // the upstream reads the body through the tap
			if tap != nil {
				tap.Finish()
			}
			got := h.callbacks(r, tap)
			if len(want) > MaxCallbackURL {
				if got != nil {
					t.Fatalf("callbacks = %.60q…, want none: the value the upstream reads is %d bytes long", got, len(want))
				}
				entries := logs.FilterMessageSnippet("longer than the limit").All()
				if len(entries) != 1 {
					t.Fatalf("%d warnings about the over-long callback_url, want 1: %v", len(entries), logs.All())
				}
				ctx := entries[0].ContextMap()
				if n, _ := ctx["length"].(int64); n < int64(len(want)) {
					t.Errorf("warning's length = %v, want at least %d", ctx["length"], len(want))
				}
				for _, e := range logs.All() {
					if strings.Contains(e.Message+fmtContext(e.ContextMap()), "aaaaaaaaaa") {
						t.Errorf("the log shows the over-long URL: %s", e.Message)
					}
				}
				return
			}
			if wantList := []string{want}; want == "" && got != nil || want != "" && !slices.Equal(got, wantList) {
				t.Fatalf("callbacks = %q, the upstream reads %q", got, want)
			}
			if logs.Len() != 0 {
				t.Errorf("unexpected warnings: %v", logs.All())
			}
		})
	}
}

func fmtContext(m map[string]any) string {
	var b strings.Builder
	for k, v := range m {
		b.WriteString(k + "=")
		switch v := v.(type) {
		case string:
			b.WriteString(v)
		case int64:
			b.WriteString(strconv.FormatInt(v, 10))
		}
	}
	return b.String()
}
