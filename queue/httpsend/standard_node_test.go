package httpsend

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/faxhook/caddy-faxhook/queue/sign"
)

// TestStandardWebhooksVerifyWithNodeLibrary verifies real deliveries with a second, independent
// verifier: the npm standardwebhooks reference library, pinned in
// testdata/standardwebhooks-node (package.json and package-lock.json) and installed with
// `npm ci` into a temporary directory. It is skipped only when node or npm is missing (or in
// -short mode).
//
// A webhook whose body is valid UTF-8 (every sent-fax event) must verify under both rotated
// keys, and not under a third. A body with a binary PDF (a received fax's fax_completed) is not
// asserted: the npm library decodes a Buffer body as UTF-8 before signing, which changes
// non-UTF-8 bytes, so it cannot verify such bodies (see the README's Standard Webhooks section).
func TestStandardWebhooksVerifyWithNodeLibrary(t *testing.T) {
	if testing.Short() {
		t.Skip("installs an npm package")
	}
	node, errNode := exec.LookPath("node")
	npm, errNpm := exec.LookPath("npm")
	if errNode != nil || errNpm != nil {
		t.Skip("node or npm is not installed")
	}
	dir := t.TempDir()
	for _, f := range []string{"package.json", "package-lock.json", "verify.js"} {
		b, err := os.ReadFile(filepath.Join("testdata", "standardwebhooks-node", f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	install := exec.Command(npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error")
	install.Dir = dir
	if out, err := install.CombinedOutput(); err != nil {
		t.Fatalf("installing the npm standardwebhooks package (npm ci): %v\n%s", err, out)
	}

	rec := newRecorder(t, http.StatusOK)
	s := New(Options{Token: testToken, StandardWebhooks: []StandardRule{{Keys: []sign.StandardKey{mustKey(t, stdSecret), mustKey(t, stdOtherSecret)}}}})
	defer s.CloseIdleConnections()
	job := newJob(rec.srv.URL + "/hook")
	job.Files = nil // a sent fax's webhook: fields only, UTF-8
	job.Payload.Fields[0].Value = `{"id":5678,"direction":"sent","caller_id":"Zoë's line","status":"success"}`
	if res := s.Send(context.Background(), job); res.Err != nil {
		t.Fatal(res.Err)
	}
	withPDF := newJob(rec.srv.URL + "/hook")
	withPDF.ID = "job-pdf"
	if res := s.Send(context.Background(), withPDF); res.Err != nil {
		t.Fatal(res.Err)
	}
	reqs := rec.requests()

	verify := func(secret string, r request) (bool, string) {
		h := map[string]string{}
		for k := range r.header {
			h[k] = r.header.Get(k)
		}
		hb, _ := json.Marshal(h)
		hf, bf := filepath.Join(dir, "headers.json"), filepath.Join(dir, "body.bin")
		if err := os.WriteFile(hf, hb, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(bf, r.body, 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(node, "verify.js", secret, hf, bf)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if _, exit := err.(*exec.ExitError); err != nil && !exit {
			t.Fatalf("running node: %v", err)
		}
		return err == nil, strings.TrimSpace(string(out))
	}
	for _, secret := range []string{stdSecret, stdOtherSecret} {
		if ok, out := verify(secret, reqs[0]); !ok {
			t.Errorf("npm standardwebhooks with key %s…: %s", secret[:10], out)
		}
	}
	if ok, _ := verify("whsec_d3Jvbmcta2V5", reqs[0]); ok {
		t.Error("npm standardwebhooks verified with a key that did not sign")
	}
	ok, out := verify(stdSecret, reqs[1])
	t.Logf("body with a binary PDF, npm standardwebhooks: verified=%v (%s)", ok, out)
}
