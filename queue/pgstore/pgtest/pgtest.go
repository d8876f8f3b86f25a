//go:build unix

package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Version is the major version of PostgreSQL the harness looks for first.
const Version = "15"

// InstallHint says how to get the server binaries; errors about missing binaries end with it.
const InstallHint = "install Debian's postgresql package (apt-get install -y --no-install-recommends postgresql), " +
	"which puts the server binaries in /usr/lib/postgresql/" + Version + "/bin"

// ErrNoBinaries is wrapped by the error of StartServer when no PostgreSQL server binaries are found.
var ErrNoBinaries = errors.New("PostgreSQL server binaries (initdb, postgres) not found")

// Server is a running throwaway PostgreSQL server.
type Server struct {
	dir   string // temporary directory: data/, sock/, server.log
	port  int
	cmd   *exec.Cmd
	exit  chan struct{} // closed when the postmaster exited
	dbs   atomic.Int64
	watch *os.Process // the watchdog, which Stop ends
	admin string      // DSN of the postgres database, for CREATE DATABASE

	stopOnce sync.Once
	stopErr  error
}

// FindBinaries returns the directory holding initdb, postgres and pg_ctl: Debian's
// /usr/lib/postgresql/<Version>/bin, else the directory of initdb on PATH, else
// `pg_config --bindir`.
func FindBinaries() (string, error) { return findBinaries("/usr/lib/postgresql/" + Version + "/bin") }

// findBinaries is FindBinaries with Debian's directory as debian.
func findBinaries(debian string) (string, error) {
	var tried []string
	ok := func(dir string) bool {
		tried = append(tried, dir)
		for _, b := range []string{"initdb", "postgres"} {
			if fi, err := os.Stat(filepath.Join(dir, b)); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
				return false
			}
		}
		return true
	}
	if ok(debian) {
		return debian, nil
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			p = real
		}
		if d := filepath.Dir(p); ok(d) {
			return d, nil
		}
	}
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		if d := strings.TrimSpace(string(out)); d != "" && ok(d) {
			return d, nil
		}
	}
	return "", fmt.Errorf("%w (looked in %s): %s", ErrNoBinaries, strings.Join(tried, ", "), InstallHint)
}

// StartServer initialises a cluster in a new temporary directory and starts a server on a free
// loopback port. When the process runs as root, the server runs as the postgres user (initdb
// refuses root). The caller stops it with Stop.
func StartServer() (*Server, error) {
	bin, err := FindBinaries()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "faxhook-pg-")
	if err != nil {
		return nil, fmt.Errorf("creating the server's directory: %w", err)
	}
	s := &Server{dir: dir, exit: make(chan struct{})}
	if err := s.start(bin); err != nil {
		s.Stop()
		return nil, err
	}
	return s, nil
}

// cred is the user the server runs as: nil (this process's) unless this process is root.
func cred() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("running as root, the server must run as the postgres user: %w", err)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err := errors.Join(err1, err2); err != nil {
		return nil, fmt.Errorf("reading the postgres user's ids: %w", err)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

func (s *Server) start(bin string) error {
	cr, err := cred()
	if err != nil {
		return err
	}
	data, sock := filepath.Join(s.dir, "data"), filepath.Join(s.dir, "sock")
	if err := os.Mkdir(sock, 0o700); err != nil {
		return fmt.Errorf("creating the socket directory: %w", err)
	}
	if cr != nil {
		for _, p := range []string{s.dir, sock} {
			if err := os.Chown(p, int(cr.Uid), int(cr.Gid)); err != nil {
				return fmt.Errorf("handing %s to the postgres user: %w", p, err)
			}
		}
	}
	initdb := exec.Command(filepath.Join(bin, "initdb"), "-D", data, "-U", "postgres", "-A", "trust",
		"-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions")
	initdb.Dir = s.dir
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cr}
	if out, err := initdb.CombinedOutput(); err != nil {
		return fmt.Errorf("initdb: %w\n%s", err, out)
	}
	// Stop the watchdog's and the server's output from reaching the test's stdout.
	logf, err := os.OpenFile(filepath.Join(s.dir, "server.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("creating the server log: %w", err)
	}
	defer logf.Close()
	var lastErr error
	for range 5 { // the free port may be taken between probing and listening
		if s.watch != nil {
			s.watch.Kill()
		}
		s.port, err = freePort()
		if err != nil {
			return err
		}
		fsync := "off" // tests only: see the package doc
		if os.Getenv("PGTEST_FSYNC") == "on" {
			fsync = "on"
		}
		s.cmd = exec.Command(filepath.Join(bin, "postgres"), "-D", data, "-p", strconv.Itoa(s.port), "-k", sock,
			"-c", "listen_addresses=127.0.0.1",
			"-c", "fsync="+fsync, "-c", "full_page_writes="+fsync,
			"-c", "max_connections=300", "-c", "shared_buffers=64MB",
			"-c", "max_locks_per_transaction=256",
			"-c", "log_min_messages=warning", "-c", "logging_collector=off")
		for _, kv := range strings.Fields(os.Getenv("PGTEST_SETTINGS")) {
			s.cmd.Args = append(s.cmd.Args, "-c", kv)
		}
		s.cmd.Dir = s.dir
		s.cmd.Stdout, s.cmd.Stderr = logf, logf
		s.cmd.SysProcAttr = sysProcAttr(cr)
		if err := s.cmd.Start(); err != nil {
			return fmt.Errorf("starting postgres: %w", err)
		}
		s.exit = make(chan struct{})
		go func(cmd *exec.Cmd, exit chan struct{}) { cmd.Wait(); close(exit) }(s.cmd, s.exit)
		s.watchdog(data)
		s.admin = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", s.port)
		if lastErr = s.waitReady(30 * time.Second); lastErr == nil {
			return nil
		}
		s.kill()
	}
	return fmt.Errorf("starting postgres: %w\n%s", lastErr, s.logTail())
}

// watchdog starts a detached shell loop that stops the server and removes its directory once
// this process is gone, however it died.
func (s *Server) watchdog(data string) {
	script := `while kill -0 "$1" 2>/dev/null; do sleep 1; done
# The server may have exited and its pid been reused: stop only a postgres.
if [ -r "/proc/$2/cmdline" ] && ! grep -q postgres "/proc/$2/cmdline"; then rm -rf "$3"; exit 0; fi
kill -QUIT "$2" 2>/dev/null
i=0; while kill -0 "$2" 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done
kill -KILL "$2" 2>/dev/null
rm -rf "$3"`
	w := exec.Command("/bin/sh", "-c", script, "pgtest-watchdog", strconv.Itoa(os.Getpid()), strconv.Itoa(s.cmd.Process.Pid), s.dir)
	w.SysProcAttr = &syscall.SysProcAttr{Setsid: true} // outlives this process and its process group
	if err := w.Start(); err == nil {
		s.watch = w.Process
		go w.Wait()
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("finding a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// waitReady connects until the server answers, the server exits or the time is up.
func (s *Server) waitReady(within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		c, err := pgx.Connect(ctx, s.admin)
		if err == nil {
			err = c.Ping(ctx)
			c.Close(ctx)
		}
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-s.exit:
			return fmt.Errorf("the server exited: %w", err)
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the server did not answer within %s: %w", within, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (s *Server) logTail() string {
	b, _ := os.ReadFile(filepath.Join(s.dir, "server.log"))
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// kill stops the postmaster at once (SIGQUIT: immediate shutdown, as `pg_ctl stop -m
// immediate` does) and waits for it, killing it after 5 seconds.
func (s *Server) kill() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	s.cmd.Process.Signal(syscall.SIGQUIT)
	select {
	case <-s.exit:
	case <-time.After(5 * time.Second):
		s.cmd.Process.Kill()
		<-s.exit
	}
}

// Stop stops the server and removes its directory. A second Stop does nothing.
func (s *Server) Stop() error {
	s.stopOnce.Do(func() {
		if s.watch != nil {
			s.watch.Kill()
		}
		s.kill()
		s.stopErr = os.RemoveAll(s.dir)
	})
	return s.stopErr
}

// DSN returns the connection string of database db on the server.
func (s *Server) DSN(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", s.port, db)
}

// PID returns the process id of the server (the postmaster).
func (s *Server) PID() int { return s.cmd.Process.Pid }

// Dir returns the temporary directory that holds the server's data, socket and log.
func (s *Server) Dir() string { return s.dir }

// Port returns the server's TCP port on 127.0.0.1.
func (s *Server) Port() int { return s.port }

// NewDatabase creates an empty database and returns its DSN.
func (s *Server) NewDatabase(ctx context.Context) (string, error) {
	name := fmt.Sprintf("t%d_%d", os.Getpid(), s.dbs.Add(1))
	c, err := pgx.Connect(ctx, s.admin)
	if err != nil {
		return "", fmt.Errorf("connecting to the test server: %w", err)
	}
	defer c.Close(ctx)
	// The default strategy (WAL_LOG) writes template0's pages to the WAL; FILE_COPY would be
	// slower here, as it takes two checkpoints.
	if _, err := c.Exec(ctx, "CREATE DATABASE "+name+" TEMPLATE template0"); err != nil {
		return "", fmt.Errorf("creating database %s: %w", name, err)
	}
	return s.DSN(name), nil
}

// The server of this test binary, started by the first Start.
var (
	shared    *Server
	sharedErr error
	sharedMu  sync.Mutex
	mainRuns  atomic.Bool
)

// Main runs the tests of m and stops the server Start started, if any; use it in TestMain.
func Main(m *testing.M) int {
	mainRuns.Store(true)
	code := m.Run()
	sharedMu.Lock()
	defer sharedMu.Unlock()
	if shared != nil {
		if err := shared.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "pgtest: stopping the server:", err)
		}
		shared = nil
	}
	return code
}

// Start returns the DSN of a new, empty database on the test binary's server, which it starts
// on first use. The test fails when no server can be started (without PostgreSQL's binaries,
// with a message that says how to install them). The test binary's TestMain must run the
// tests through Main, which stops the server at the end.
func Start(t testing.TB) string {
	t.Helper()
	if !mainRuns.Load() {
		t.Fatal("pgtest.Start needs the test binary's TestMain to run the tests with pgtest.Main, which stops the server")
	}
	sharedMu.Lock()
	if shared == nil && sharedErr == nil {
		shared, sharedErr = StartServer()
	}
	s, err := shared, sharedErr
	sharedMu.Unlock()
	if err != nil {
		t.Fatalf("starting a PostgreSQL server for the test: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dsn, err := s.NewDatabase(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return dsn
}
