package module_test

import (
	"os/exec"
	"strings"
	"testing"
)

// The app never imports the HTTP handler: imports point one way, handler → module → (profile,
// queue). Only module/plugin, which registers every module, may name both.
func TestModuleImportsNoHandler(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the go tool")
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go tool in PATH")
	}
	const root = "github.com/faxhook/caddy-faxhook/"
	out, err := exec.Command(goBin, "list", root+"module/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, pkg := range strings.Fields(string(out)) {
		if pkg == root+"module/plugin" {
			continue
		}
		deps, err := exec.Command(goBin, "list", "-deps", pkg).Output()
		if err != nil {
			t.Fatalf("go list -deps %s: %v", pkg, err)
		}
		for _, d := range strings.Fields(string(deps)) {
			if strings.HasPrefix(d, root+"handler") {
				t.Errorf("%s imports %s", pkg, d)
			}
		}
	}
}
