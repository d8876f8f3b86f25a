package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/faxhook/caddy-faxhook/examples/faxapp"
	"github.com/faxhook/caddy-faxhook/examples/harness"
	"github.com/faxhook/caddy-faxhook/examples/receiver"
	"github.com/faxhook/caddy-faxhook/queue/pgstore/pgtest"
)

// TestMain stops the PostgreSQL server that tests over PostgreSQL storage start.
func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// pgPassword is the password put in the DSN: the test server trusts loopback connections, so
// any password works, and it must show up nowhere.
const pgPassword = "never-shown-pw"

// withPassword returns dsn (postgres://user@host…) with pgPassword.
func withPassword(t *testing.T, dsn string) string {
	user, rest, ok := strings.Cut(strings.TrimPrefix(dsn, "postgres://"), "@")
	if !ok {
		t.Fatalf("unexpected DSN form %q", dsn)
	}
	return "postgres://" + user + ":" + pgPassword + "@" + rest
}

// get returns the body of an admin API GET.
func (e *env) get(path string) string {
	e.t.Helper()
	resp, err := http.Get("http://" + e.admin + path)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		e.t.Fatalf("GET %s: %s: %s", path, resp.Status, b)
	}
	return string(b)
}

// With storage on PostgreSQL, a single Caddy delivers as it does on Badger: a sent fax's
// webhook arrives, signed, and the admin API lists it. The DSN, given through {env.*}, shows up
// in no log line, no admin API answer and not in Caddy's config.
func TestPostgresStorage(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL")
	}
	dsn := withPassword(t, pgtest.Start(t))
	slow := make(chan struct{})
	respond := func(d receiver.Delivery) int {
		if strings.HasSuffix(d.URL, "/slow") {
			<-slow // the attempt stays under way, its job claimed
		}
		return 200
	}
	e := newEnvIn(t, faxapp.Config{Tick: 50 * time.Millisecond, Seed: 3}, respond,
		"postgres {\n\t\t\tjournal "+t.TempDir()+"\n\t\t\tinstance e2e\n\t\t}", "{env.FAXHOOK_DSN}", "FAXHOOK_DSN="+dsn)
	ctx := ctxT(t, 60*time.Second)
	id := e.sendAndFollow(ctx, harness.SendOptions{To: []string{"+15550100000"}, CallbackURL: e.rcvURL + "/cb"})
	ds := e.expectExactly(1)
	if d := ds[0]; !d.Verified || d.Fields["event_type"] != "fax_completed" || !strings.Contains(d.Fields["fax"], `"id":`) {
		t.Fatalf("delivery %+v", d)
	}
	var stats struct {
		Storage string           `json:"storage"`
		Jobs    map[string]int64 `json:"jobs"`
	}
	body := e.get("/faxhook/stats")
	if err := json.Unmarshal([]byte(body), &stats); err != nil {
		t.Fatalf("stats %s: %v", body, err)
	}
	if stats.Jobs["delivered"] != 1 {
		t.Errorf("stats jobs = %v, want 1 delivered", stats.Jobs)
	}
	if !strings.HasPrefix(stats.Storage, "postgres://") || strings.Contains(stats.Storage, pgPassword) {
		t.Errorf("stats storage = %q; want the URL without its password", stats.Storage)
	}
	deliveries := e.get("/faxhook/deliveries?state=delivered")
	if !strings.Contains(deliveries, `"state":"delivered"`) {
		t.Errorf("delivered jobs: %s", deliveries)
	}
	// A job under way is shown as leased, with the claim that holds it.
	e.sendAndFollow(ctx, harness.SendOptions{To: []string{"+15550100000"}, CallbackURL: e.rcvURL + "/slow"})
	var leased string
	for deadline := time.Now().Add(20 * time.Second); leased == "" && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if l := e.get("/faxhook/deliveries"); strings.Contains(l, `"state":"leased"`) {
			leased = l
		}
	}
	close(slow)
	if !strings.Contains(leased, `"leased_by":"e2e-`) {
		t.Errorf("deliveries while one is under way: %s; want it leased, leased_by this instance's claim", leased)
	}
	fax := e.get("/faxhook/faxes/" + strconv.FormatInt(id, 10))
	for what, text := range map[string]string{
		"the stats": body, "the deliveries": deliveries, "the fax": fax,
		"Caddy's config": e.get("/config/"), "Caddy's log": e.caddy.Tail(100000),
	} {
		if strings.Contains(text, pgPassword) {
			t.Errorf("%s shows the database password", what)
		}
	}
}
