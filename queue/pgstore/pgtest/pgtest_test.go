//go:build unix

package pgtest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func TestMain(m *testing.M) { os.Exit(Main(m)) }

// Start gives each test a database of its own on one server.
func TestStart(t *testing.T) {
	a, b := Start(t), Start(t)
	if a == b {
		t.Fatalf("two tests got the same database %s", a)
	}
	ctx := context.Background()
	c, err := pgx.Connect(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	var v string
	if err := c.QueryRow(ctx, "SHOW server_version").Scan(&v); err != nil {
		t.Fatal(err)
	}
	t.Logf("PostgreSQL %s", v)
}

// The server of a test binary that is killed (no cleanup runs) is stopped, and its directory
// removed, all the same. The killed binary is a copy of this one running TestHelperServer.
func TestServerDiesWithItsTestBinary(t *testing.T) {
	if os.Getenv("PGTEST_HELPER") != "" {
		t.Skip("runs in the parent only")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperServer$")
	cmd.Env = append(os.Environ(), "PGTEST_HELPER=1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	var pid int
	var dir string
	lines := bufio.NewScanner(out)
	for lines.Scan() {
		if n, _ := fmt.Sscanf(lines.Text(), "SERVER %d %s", &pid, &dir); n == 2 {
			break
		}
	}
	if pid == 0 {
		t.Fatal("the helper started no server")
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	deadline := time.Now().Add(10 * time.Second)
	for syscall.Kill(pid, 0) == nil || !gone(dir) {
		if time.Now().After(deadline) {
			syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("10s after its test binary was killed, the server (pid %d) runs: %v, its directory %s is gone: %v",
				pid, syscall.Kill(pid, 0) == nil, dir, gone(dir))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func gone(dir string) bool {
	_, err := os.Stat(dir)
	return errors.Is(err, os.ErrNotExist)
}

// TestHelperServer starts a server, says where, and waits to be killed.
func TestHelperServer(t *testing.T) {
	if os.Getenv("PGTEST_HELPER") == "" {
		t.Skip("a helper of TestServerDiesWithItsTestBinary")
	}
	s, err := StartServer()
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("SERVER %d %s\n", s.PID(), s.Dir())
	time.Sleep(time.Minute)
}

// Without server binaries, the error says how to install them.
func TestNoBinaries(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	_, err := findBinaries(t.TempDir())
	if !errors.Is(err, ErrNoBinaries) || !strings.Contains(err.Error(), "apt-get install -y --no-install-recommends postgresql") {
		t.Errorf("findBinaries without binaries = %v, want ErrNoBinaries and how to install them", err)
	}
}
