package e2e

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/faxhook/caddy-faxhook/examples/faxapp"
	"github.com/faxhook/caddy-faxhook/examples/harness"
	"github.com/faxhook/caddy-faxhook/examples/receiver"
)

// accountToken is the webhook token of the console tests' account, urlPassword the password in
// a configured webhook URL: no page may show them.
const (
	accountToken = "console-account-token-5150"
	urlPassword  = "hunter2-url-password"
)

// consoleEnv is a Caddy with faxhook whose one webhook died (the receiver answers 500 until
// accept is set, and the retry schedule is one step of 100 ms), with the console in a site of
// its own on loopback; it returns the console's URL and the dead delivery's id too.
func consoleEnv(t *testing.T) (*env, *atomic.Bool, string, string, int64) {
	t.Helper()
	var accept atomic.Bool
	const opts = "retry_schedule 100ms\n\t\tsent_url RCV/console-hook\n\t\tnumber +15550009999 RCV/line-9\n\t\t" +
		"received_url https://ops:" + urlPassword + "@received.example/in\n\t\t" +
		"account console-acct {\n\t\t\ttoken " + accountToken + "\n\t\t\treceived_url RCV/acct\n\t\t}"
	e := newEnvIn(t, faxapp.Config{Tick: 50 * time.Millisecond, Seed: 21}, func(receiver.Delivery) int {
		if accept.Load() {
			return http.StatusOK
		}
		return http.StatusInternalServerError
	}, opts, "")
	site, err := harness.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	if err := e.caddy.Reload(e.caddyfile(opts) + "\nhttp://" + site + " {\n\tfaxhook_console {\n\t\tadmin " + e.admin + "\n\t}\n}\n"); err != nil {
		t.Fatal(err)
	}
	ctx := ctxT(t, 30*time.Second)
	faxID := e.sendAndFollow(ctx, harness.SendOptions{To: []string{"+15550100000"}, File: faxapp.PDF(1)})
	var id string
	for ctx.Err() == nil && id == "" {
		var l struct {
			Deliveries []struct {
				ID string `json:"id"`
			} `json:"deliveries"`
		}
		json.Unmarshal([]byte(e.get("/faxhook/deliveries?state=dead")), &l)
		if len(l.Deliveries) == 1 {
			id = l.Deliveries[0].ID
		}
		time.Sleep(50 * time.Millisecond)
	}
	if id == "" {
		t.Fatal("the webhook did not die")
	}
	return e, &accept, "http://" + site + "/faxhook/console/", id, faxID
}

// Every console page is HTML with a strict Content-Security-Policy and no secret; an action
// without the CSRF token, or from another site, is refused; the console is only where its
// directive is.
func TestConsolePagesAreSafe(t *testing.T) {
	e, _, base, id, faxID := consoleEnv(t)
	for _, page := range []string{"", "deliveries", "deliveries?state=dead", "deliveries/" + id, "faxes", "faxes/" + strconv.FormatInt(faxID, 10), "test", "settings"} {
		resp, err := http.Get(base + page)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
			t.Errorf("%s: %d %s", page, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || strings.Contains(csp, "unsafe-inline") {
			t.Errorf("%s: Content-Security-Policy %q", page, csp)
		}
		for _, secret := range []string{token, accountToken, urlPassword} {
			if strings.Contains(string(body), secret) {
				t.Errorf("page %q shows a secret (a webhook token or a URL's password)", page)
			}
		}
		if strings.Contains(string(body), "<script>") || strings.Contains(string(body), " style=") {
			t.Errorf("page %q has inline script or style, which its CSP refuses", page)
		}
	}
	post := func(form url.Values, header map[string]string) int {
		req, _ := http.NewRequest(http.MethodPost, base+"replay", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		for k, v := range header {
			req.Header.Set(k, v)
		}
		resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := post(url.Values{"since": {""}}, nil); got != http.StatusForbidden {
		t.Errorf("replay without a CSRF token: %d, want 403", got)
	}
	if got := post(url.Values{"csrf": {"forged"}}, nil); got != http.StatusForbidden {
		t.Errorf("replay with a wrong CSRF token: %d, want 403", got)
	}
	page, _ := http.Get(base + "deliveries")
	html, _ := io.ReadAll(page.Body)
	page.Body.Close()
	csrf := between(string(html), `name="csrf" value="`, `"`)
	if got := post(url.Values{"csrf": {csrf}}, map[string]string{"Sec-Fetch-Site": "cross-site"}); got != http.StatusForbidden {
		t.Errorf("replay from another site: %d, want 403", got)
	}
	if got := post(url.Values{"csrf": {csrf}}, nil); got != http.StatusSeeOther {
		t.Errorf("replay with the page's CSRF token: %d, want 303 back to the log", got)
	}
	for _, other := range []string{e.site, e.admin} { // the fax API's site, Caddy's admin endpoint
		if resp, err := http.Get("http://" + other + "/faxhook/console/"); err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if strings.Contains(string(b), "faxhook console") {
				t.Errorf("the console answers on %s, where no faxhook_console directive put it", other)
			}
		}
	}
}

// between returns the text of s between the first from and the next to.
func between(s, from, to string) string {
	_, after, ok := strings.Cut(s, from)
	if !ok {
		return ""
	}
	v, _, _ := strings.Cut(after, to)
	return v
}

// chromiumPath returns Debian's chromium, skipping the test where it is missing, unless CI is
// set (./xcaddy.sh test installs it).
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath("chromium"); err == nil {
		return p
	}
	if os.Getenv("CI") != "" {
		t.Fatal("chromium is missing; ./xcaddy.sh test installs it (Debian package chromium)")
	}
	t.Skip("chromium is missing (Debian package chromium; ./xcaddy.sh test installs it)")
	return ""
}

// In a real browser: the dead delivery is in the log; its page shows both attempts, and its
// fax's timeline shows it; after the
// receiver is fixed, Replay dead delivers it and its row turns delivered without the page
// being reloaded; no JavaScript error on any page. Screenshots go to the test's temp dir.
func TestConsoleInABrowser(t *testing.T) {
	chromium := chromiumPath(t)
	e, accept, base, id, _ := consoleEnv(t)
	shots := t.TempDir()
	if dir := os.Getenv("FAXHOOK_CONSOLE_SHOTS"); dir != "" { // keep them to look at
		shots = dir
	}
	ctx := ctxT(t, 60*time.Second)
	alloc, cancel := chromedp.NewExecAllocator(ctx, append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium), chromedp.NoSandbox, chromedp.Headless, chromedp.WindowSize(1200, 900))...)
	defer cancel()
	bctx, cancel := chromedp.NewContext(alloc)
	defer cancel()
	var mu sync.Mutex
	var jsErrors []string
	err := chromedp.Listen(bctx, func(ev any) {
		mu.Lock()
		defer mu.Unlock()
		switch ev := ev.(type) {
		case *runtime.EventExceptionThrown:
			jsErrors = append(jsErrors, ev.ExceptionDetails.Text+" "+exceptionText(ev.ExceptionDetails))
		case *runtime.EventConsoleAPICalled:
			if ev.Type == runtime.ConsoleAPICalledTypeError {
				for _, a := range ev.Args {
					jsErrors = append(jsErrors, string(a.Value)+a.Description)
				}
			}
		}
	})
	if err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	shot := func(name string) chromedp.Action[chromedp.Void] {
		return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			png, err := chromedp.FullScreenshot(100)(ctx, tg)
			if err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(shots, name+".png"), png, 0o644)
		})
	}
	do := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(bctx, steps...); err != nil {
			tctx, cancel := context.WithTimeout(bctx, 5*time.Second)
			defer cancel()
			html, _ := chromedp.Run(tctx, chromedp.Evaluate[string](`document.documentElement.outerHTML`))
			t.Fatalf("%s: %v\npage:\n%s", what, err, html)
		}
	}
	row := func(state string) chromedp.CSS {
		return chromedp.CSS(`tr[data-id="` + id + `"][data-state="` + state + `"]`)
	}
	do("the overview", chromedp.Navigate(base), chromedp.WaitVisible(chromedp.CSS(`svg.chart`)), shot("overview"))
	do("the dead delivery in the log", chromedp.Navigate(base+"deliveries?state=dead"),
		chromedp.WaitVisible(row("dead")), shot("log-dead"))
	do("its page", chromedp.Click(chromedp.CSS(`tr[data-id="`+id+`"] a`)), chromedp.WaitVisible(chromedp.CSS(`#attempts`)), shot("delivery"))
	attempts, err := chromedp.Run(bctx, chromedp.Evaluate[int](`document.querySelectorAll('#attempts li').length`))
	if err != nil || attempts != 2 {
		t.Errorf("the delivery's page lists %d attempts (%v), want 2 (the first and its one retry)", attempts, err)
	}
	do("its fax's timeline", chromedp.Click(chromedp.CSS(`#fax-link`)),
		chromedp.WaitVisible(chromedp.CSS(`#timeline li[data-id="`+id+`"][data-state="dead"]`)), shot("fax"))
	accept.Store(true)
	do("the log", chromedp.Navigate(base+"deliveries"), chromedp.WaitVisible(row("dead")))
	if _, err := chromedp.Run(bctx, chromedp.Evaluate[bool](`window.__notReloaded = true`)); err != nil {
		t.Fatal(err)
	}
	do("replaying it", chromedp.Click(chromedp.CSS(`#replay`)), chromedp.WaitVisible(row("delivered")), shot("log-delivered"))
	if same, err := chromedp.Run(bctx, chromedp.Evaluate[bool](`window.__notReloaded === true`)); err != nil || !same {
		t.Errorf("the page was reloaded to show the replayed delivery (%v); want a live update", err)
	}
	do("the settings", chromedp.Navigate(base+"settings"), chromedp.WaitVisible(chromedp.CSS(`tr[data-number="+15550009999"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#set-console-acct`)), shot("settings"))
	if text, err := chromedp.Run(bctx, chromedp.Evaluate[string](`document.body.innerText`)); err != nil ||
		strings.Contains(text, token) || strings.Contains(text, accountToken) || !strings.Contains(text, "/line-9") {
		t.Errorf("the settings page (%v) shows a token, or not the number's URL:\n%s", err, text)
	}
	newURL := e.rcvURL + "/changed-from-the-console"
	do("changing the sent URL", chromedp.SetValue(chromedp.CSS(`#sent_urls`), newURL),
		chromedp.Click(chromedp.CSS(`#save-settings`)),
		chromedp.Poll[chromedp.Void](`[...document.querySelectorAll(".sent-url")].some(e => e.textContent.endsWith("/changed-from-the-console"))`),
		shot("settings-changed"))
	if got := e.get("/config/apps/faxhook/sent_urls"); !strings.Contains(got, newURL) {
		t.Errorf("Caddy's config after the change: sent_urls %s; want %s", got, newURL)
	}
	// The received URL was shown as https://REDACTED@…, sent back so, and kept its password.
	if got := e.get("/config/apps/faxhook/received_urls"); !strings.Contains(got, "ops:"+urlPassword+"@") {
		t.Errorf("Caddy's config after the change: received_urls %s; want the URL with its credentials", got)
	}
	if got := e.get("/config/apps/faxhook/numbers"); !strings.Contains(got, `"+15550009999":["`+e.rcvURL+`/line-9"]`) {
		t.Errorf("Caddy's config after the change: numbers %s; want +15550009999's URL kept", got)
	}
	// An account's own settings: its sent URL, a number of its own and webhook version 1; its
	// received URL, its own already, is kept; inflight stays as the global setting.
	acctSent := e.rcvURL + "/acct-sent"
	do("changing the account's settings", chromedp.Navigate(base+"settings"),
		chromedp.Click(chromedp.CSS(`details[data-account="console-acct"] summary`)),
		chromedp.SetValue(chromedp.CSS(`#a0-sent_urls`), acctSent),
		chromedp.SetValue(chromedp.CSS(`#a0-numbers`), "+15550007777 "+e.rcvURL+"/acct-line"),
		chromedp.SetValue(chromedp.CSS(`#a0-webhook_version`), "1"),
		chromedp.Click(chromedp.CSS(`details[data-account="console-acct"] .save-account`)),
		chromedp.Poll[chromedp.Void](`[...document.querySelectorAll('section[aria-labelledby="set-console-acct"] .sent-url')].some(e => e.textContent.endsWith("/acct-sent"))`),
		shot("settings-account"))
	var acct struct {
		SentURLs       []string            `json:"sent_urls"`
		ReceivedURLs   []string            `json:"received_urls"`
		Numbers        map[string][]string `json:"numbers"`
		WebhookVersion string              `json:"webhook_version"`
		Inflight       *bool               `json:"inflight"`
		Token          string              `json:"token"`
	}
	if err := json.Unmarshal([]byte(e.get("/config/apps/faxhook/accounts/0")), &acct); err != nil ||
		!slices.Equal(acct.SentURLs, []string{acctSent}) || !slices.Equal(acct.ReceivedURLs, []string{e.rcvURL + "/acct"}) ||
		!slices.Equal(acct.Numbers["+15550007777"], []string{e.rcvURL + "/acct-line"}) || len(acct.Numbers) != 1 ||
		acct.WebhookVersion != "1" || acct.Inflight != nil || acct.Token != accountToken {
		t.Errorf("Caddy's config of the account after the change (%v): %+v", err, acct)
	}
	before := e.rcv.Count()
	do("a test webhook", chromedp.Navigate(base+"test"),
		chromedp.SendKeys(chromedp.CSS(`#test-url`), e.rcvURL+"/test-hook"),
		chromedp.Click(chromedp.CSS(`#send-test`)),
		chromedp.Poll[chromedp.Void](`document.getElementById("flash").textContent.startsWith("Accepted")`), shot("test"))
	if ds := e.rcv.Deliveries(); len(ds) != before+1 || !ds[before].Verified || ds[before].Fields["event_type"] != "fax_completed" ||
		!strings.HasSuffix(ds[before].URL, "/test-hook") {
		t.Errorf("the test webhook: deliveries %+v; want one more, a verified fax_completed to /test-hook", ds[before:])
	}
	do("the phone-width log", chromedp.EmulateViewport(390, 844), chromedp.Navigate(base+"deliveries"),
		chromedp.WaitVisible(chromedp.CSS(`table`)), shot("log-phone"))
	mu.Lock()
	defer mu.Unlock()
	if len(jsErrors) > 0 {
		t.Errorf("JavaScript errors in the browser: %q", jsErrors)
	}
	entries, _ := os.ReadDir(shots)
	if len(entries) != 10 {
		t.Errorf("%d screenshots in %s, want 10", len(entries), shots)
	}
}

// exceptionText is the description of a thrown exception, if the browser gave one.
func exceptionText(d *runtime.ExceptionDetails) string {
	if d.Exception != nil {
		return d.Exception.Description
	}
	return ""
}
