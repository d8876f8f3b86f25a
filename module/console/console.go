// Package console is faxhook's web console: server-rendered pages over faxhook's admin API (an
// overview of the queue, the delivery log with its attempts, retry and replay), served by the
// `faxhook_console` HTTP handler (module `http.handlers.faxhook_console`) under
// /faxhook/console/ of the site an operator puts it in, behind the site's own authentication.
//
// It is not served on Caddy's admin endpoint: that endpoint refuses top-level browser
// navigations (a request with Sec-Fetch-Mode but no Origin or Referer gets 403, a
// cross-site defence of Caddy's admin API), so a browser could not open it there.
//
// The console is a client of the admin API's queries (module.AdminHandler), not of the store:
// it shows what the admin API shows, and so never a secret. Every page carries a strict
// Content-Security-Policy (no inline script or style); actions are POSTs with a CSRF token.
package console

import (
	"bytes"
	"cmp"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/faxhook/caddy-faxhook/module"
)

func init() {
	caddy.RegisterModule(Console{})
}

// Prefix is where the console is served on Caddy's admin endpoint.
const Prefix = "/faxhook/console/"

//go:embed templates/*.html
var templateFS embed.FS

//go:embed assets
var assetFS embed.FS

// csp is the Content-Security-Policy of every console response: scripts, styles and requests
// only from the console itself, no inline code, no framing, forms posting only to it.
const csp = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; " +
	"form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// Console is the `faxhook_console` HTTP handler: the web console at /faxhook/console/ of the
// site it is in; other requests pass on to the next handler. Put it in a site that only the
// operators reach: behind `basic_auth` or `forward_auth`, or on a loopback address.
type Console struct {
	// Admin is the address of Caddy's admin endpoint, through whose config API the settings
	// page changes settings (as `curl -X PATCH localhost:2019/config/apps/faxhook` would).
	// Default: Caddy's default, localhost:2019 (or the CADDY_ADMIN environment variable); set it
	// when the config moves the admin endpoint (the `admin` global option). TCP addresses only.
	Admin string `json:"admin,omitempty"`

	api   http.Handler
	pages *template.Template
}

// csrfKey signs the CSRF tokens: one per process, so that a settings change, which reloads
// Caddy's config and so provisions a new console, does not void the open pages' forms.
var csrfKey = func() []byte {
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		panic("making the console's CSRF key: " + err.Error())
	}
	return k
}()

// Interface guards.
var (
	_ caddy.Module                = (*Console)(nil)
	_ caddy.Provisioner           = (*Console)(nil)
	_ caddyhttp.MiddlewareHandler = (*Console)(nil)
)

// CaddyModule returns the Caddy module information.
func (Console) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "http.handlers.faxhook_console", New: func() caddy.Module { return new(Console) }}
}

// Provision parses the templates and makes the CSRF key.
func (c *Console) Provision(caddy.Context) error {
	t, err := template.New("").Funcs(funcs).ParseFS(templateFS, "templates/*.html")
	if err != nil {
		return fmt.Errorf("parsing the console's templates: %w", err)
	}
	c.pages, c.api = t, module.AdminHandler()
	return nil
}

// ServeHTTP serves the console's pages under Prefix and passes other requests on.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	if r.URL.Path+"/" == Prefix {
		http.Redirect(w, r, Prefix, http.StatusMovedPermanently)
		return nil
	}
	if !strings.HasPrefix(r.URL.Path, Prefix) {
		return next.ServeHTTP(w, r)
	}
	err := c.serve(w, r)
	var apiErr caddy.APIError
	if err != nil && errors.As(err, &apiErr) {
		http.Error(w, apiErr.Message, cmp.Or(apiErr.HTTPStatus, http.StatusInternalServerError))
		return nil
	}
	if err != nil {
		return caddyhttp.Error(http.StatusInternalServerError, err)
	}
	return nil
}

// serve routes a console request.
func (c *Console) serve(w http.ResponseWriter, r *http.Request) error {
	h := w.Header()
	h.Set("Content-Security-Policy", csp)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Cache-Control", "no-store")
	rest := strings.Trim(strings.TrimPrefix(r.URL.Path, Prefix), "/")
	if strings.HasPrefix(rest, "assets/") {
		return c.asset(w, r, rest)
	}
	if r.Method == http.MethodPost {
		if !c.csrfOK(r) {
			return caddy.APIError{HTTPStatus: http.StatusForbidden, Message: "the form's CSRF token is missing or wrong, or the request came from another site; reload the console page and try again"}
		}
		switch {
		case rest == "replay":
			return c.replay(w, r)
		case rest == "test":
			return c.sendTest(w, r)
		case rest == "settings":
			return c.changeSettings(w, r)
		case strings.HasPrefix(rest, "deliveries/") && strings.HasSuffix(rest, "/retry"):
			return c.retry(w, r, strings.TrimSuffix(strings.TrimPrefix(rest, "deliveries/"), "/retry"))
		}
		return caddy.APIError{HTTPStatus: http.StatusNotFound, Message: "no console action at " + r.URL.Path}
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, POST")
		return caddy.APIError{HTTPStatus: http.StatusMethodNotAllowed, Message: "method not allowed"}
	}
	switch {
	case rest == "":
		return c.overview(w, r)
	case rest == "deliveries":
		return c.deliveries(w, r)
	case strings.HasPrefix(rest, "deliveries/") && !strings.Contains(strings.TrimPrefix(rest, "deliveries/"), "/"):
		return c.delivery(w, r, strings.TrimPrefix(rest, "deliveries/"))
	case rest == "faxes":
		return c.faxes(w, r)
	case rest == "test":
		return c.testPage(w, r)
	case rest == "settings":
		return c.settingsPage(w, r)
	case strings.HasPrefix(rest, "faxes/") && !strings.Contains(strings.TrimPrefix(rest, "faxes/"), "/"):
		return c.fax(w, r, strings.TrimPrefix(rest, "faxes/"))
	}
	return caddy.APIError{HTTPStatus: http.StatusNotFound, Message: "no console page at " + r.URL.Path}
}

// asset serves an embedded file (style sheet, script).
func (c *Console) asset(w http.ResponseWriter, r *http.Request, name string) error {
	b, err := fs.ReadFile(assetFS, name)
	if err != nil {
		return caddy.APIError{HTTPStatus: http.StatusNotFound, Message: "no console asset " + name}
	}
	switch {
	case strings.HasSuffix(name, ".css"):
		w.Header().Set("Content-Type", "text/css; charset=utf-8")
	case strings.HasSuffix(name, ".js"):
		w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
	}
	w.Header().Set("Cache-Control", "max-age=300")
	_, err = w.Write(b)
	return err
}

// csrfToken is the token every console form carries: an HMAC under the process's key, which a
// page of another site cannot read.
func (c *Console) csrfToken() string {
	m := hmac.New(sha256.New, csrfKey)
	m.Write([]byte("faxhook console"))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// csrfOK reports whether a POST carries the CSRF token and, when the browser says, comes from
// the console's own origin.
func (c *Console) csrfOK(r *http.Request) bool {
	if s := r.Header.Get("Sec-Fetch-Site"); s != "" && s != "same-origin" && s != "none" {
		return false
	}
	if o := r.Header.Get("Origin"); o != "" {
		u, err := url.Parse(o)
		if err != nil || u.Host != r.Host {
			return false
		}
	}
	if err := r.ParseForm(); err != nil {
		return false
	}
	got := r.PostForm.Get("csrf")
	return got != "" && hmac.Equal([]byte(got), []byte(c.csrfToken()))
}

// call asks the admin API (method, path with query) and decodes its JSON answer into out; an
// error answer becomes an error with its message.
func (c *Console) call(r *http.Request, method, path string, out any) error {
	req, err := http.NewRequestWithContext(r.Context(), method, path, nil)
	if err != nil {
		return err
	}
	rec := &recorder{header: http.Header{}, status: http.StatusOK}
	c.api.ServeHTTP(rec, req)
	if rec.status >= 300 {
		var e struct {
			Error string `json:"error"`
		}
		json.Unmarshal(rec.body.Bytes(), &e)
		return caddy.APIError{HTTPStatus: rec.status, Message: e.Error}
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(rec.body.Bytes(), out); err != nil {
		return fmt.Errorf("reading the admin API's answer to %s %s: %w", method, path, err)
	}
	return nil
}

// recorder is an in-memory http.ResponseWriter for calls to the admin API.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header         { return r.header }
func (r *recorder) Write(b []byte) (int, error) { return r.body.Write(b) }
func (r *recorder) WriteHeader(status int)      { r.status = status }

// render writes a page (or, with ?fragment=NAME, only the template NAME of it, for the live
// updates of the console's script).
func (c *Console) render(w http.ResponseWriter, r *http.Request, page string, data map[string]any) error {
	data["CSRF"] = c.csrfToken()
	data["Prefix"] = Prefix
	data["Page"] = page
	name := page
	if f := r.URL.Query().Get("fragment"); f != "" && c.pages.Lookup(page+"-"+f) != nil {
		name = page + "-" + f
	}
	var buf bytes.Buffer
	if err := c.pages.ExecuteTemplate(&buf, name, data); err != nil {
		return fmt.Errorf("rendering the console page %s: %w", page, err)
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, err := buf.WriteTo(w)
	return err
}

// funcs are the templates' helpers.
var funcs = template.FuncMap{
	"when": func(t any) string {
		switch v := t.(type) {
		case time.Time:
			if v.IsZero() {
				return ""
			}
			return v.UTC().Format("2006-01-02 15:04:05Z")
		case *time.Time:
			if v == nil || v.IsZero() {
				return ""
			}
			return v.UTC().Format("2006-01-02 15:04:05Z")
		}
		return ""
	},
	"ago": func(seconds float64) string {
		return (time.Duration(seconds) * time.Second).String()
	},
	"list": func(v ...string) []string { return v },
	// lines is a list as a textarea holds it, one per line.
	"lines": func(v []string) string { return strings.Join(v, "\n") },
	// numberLines is the configured numbers as the settings form's textarea holds them: one per
	// line, the number and its URLs (numbers learnt from traffic left out).
	"numberLines": func(ns []number) string {
		var b strings.Builder
		for _, n := range ns {
			if n.Source == "config" {
				b.WriteString(n.Number + " " + strings.Join(n.URLs, " ") + "\n")
			}
		}
		return b.String()
	},
	"pretty": func(s string) string {
		var v any
		if json.Unmarshal([]byte(s), &v) != nil {
			return s
		}
		b, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			return s
		}
		return string(b)
	},
	"query": func(base string, kv ...string) string {
		q := url.Values{}
		for i := 0; i+1 < len(kv); i += 2 {
			if kv[i+1] != "" {
				q.Set(kv[i], kv[i+1])
			}
		}
		if len(q) == 0 {
			return base
		}
		return base + "?" + q.Encode()
	},
}
