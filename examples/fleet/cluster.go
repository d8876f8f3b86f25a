package fleet

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/faxhook/caddy-faxhook/examples/harness"
)

// leaderMetric is the gauge each instance exposes on its admin /metrics: 1 on the instance that
// holds the lead of the poller and the janitor, 0 on the others.
const leaderMetric = "faxhook_fleet_leader"

// leaderLogLine and leaderLostLine are what an instance logs when it takes and loses the lead;
// read when no instance exposes leaderMetric.
const (
	leaderLogLine  = "fleet: this instance leads the poller and janitor"
	leaderLostLine = "fleet: this instance no longer leads the poller and janitor"
)

// instance is one Caddy of the fleet.
type instance struct {
	name    string // its `instance` option: a, b, c, …
	admin   string // admin endpoint address
	site    string // address of the site that proxies the fax API
	journal string // its send journal directory, on local disk
	caddy   *harness.Caddy
	client  *harness.Client // talks to the fax API through this instance

	wrapper   string // the script that runs Caddy (see prepare)
	pidFile   string // where the wrapper writes the pid of the process it becomes
	guardFile string // exists while the instance's guard must watch

	up       atomic.Bool
	logStart atomic.Int64 // size of the log when the process last started: later lines are its own
}

// cluster is the fleet's Caddy processes over one database.
type cluster struct {
	insts []*instance
	http  *http.Client // for the admin endpoints
}

// instanceNames names the instances in order; a fleet has at most as many.
const instanceNames = "abcdefghij"

// newCluster lays out a fleet of n instances in dir, each with its own admin and site address,
// journal and client (over api); start starts them.
func newCluster(dir string, n int, api *http.Client) (*cluster, error) {
	if n < 1 || n > len(instanceNames) {
		return nil, fmt.Errorf("%d instances: want 1 to %d", n, len(instanceNames))
	}
	c := &cluster{http: &http.Client{Timeout: 5 * time.Second}}
	for i := range n {
		admin, err := harness.FreeAddr()
		if err != nil {
			return nil, err
		}
		site, err := harness.FreeAddr()
		if err != nil {
			return nil, err
		}
		name := instanceNames[i : i+1]
		d := filepath.Join(dir, name)
		in := &instance{name: name, admin: admin, site: site, journal: filepath.Join(d, "journal"),
			wrapper: filepath.Join(d, "caddy.sh"), pidFile: filepath.Join(d, "caddy.pid"), guardFile: filepath.Join(d, "guard")}
		in.client = &harness.Client{Base: "http://" + site + "/v2.1", Key: key, Secret: secret, HTTP: api}
		c.insts = append(c.insts, in)
	}
	return c, nil
}

// start starts every instance at once, running bin on the Caddyfile caddyfile(inst) in
// dir/<name> with the extra environment env. On error, the processes already up are killed.
func (c *cluster) start(bin, dir string, caddyfile func(*instance) string, env ...string) error {
	for _, in := range c.insts {
		if err := in.prepare(bin, filepath.Join(dir, in.name)); err != nil {
			return err
		}
	}
	// The instances start together, as a fleet deployed at once would: the first ones race to
	// create the schema.
	errs := make([]error, len(c.insts))
	var wg sync.WaitGroup
	for i, in := range c.insts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			in.caddy, errs[i] = harness.StartCaddy(in.wrapper, filepath.Join(dir, in.name), in.admin, caddyfile(in), env...)
			if errs[i] == nil {
				in.running()
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		c.kill()
		c.release()
		return fmt.Errorf("starting the fleet: %w", err)
	}
	return nil
}

// prepare writes the instance's wrapper script and starts its guard, before its first start.
//
// Each of the instance's processes must die with this one, however this one ends (a SIGKILL
// gives it no chance to stop them), and from the moment it is spawned: a restart that is under
// way when this process dies must not leave a Caddy behind. harness.Caddy spawns the process
// itself, so the instance runs a wrapper that writes its pid to a file and execs Caddy (keeping
// the pid), and a detached guard, started before any spawn, kills the pid in that file once this
// process is gone. The guard notices that by its own parent changing (it is reparented), not by
// probing this process's pid, which answers for as long as this process stays an unreaped
// zombie. Before the kill it checks that the pid still runs this instance's Caddyfile. Removing
// the guard file (release) ends the guard.
func (in *instance) prepare(bin, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	script := fmt.Sprintf("#!/bin/sh\necho $$ > %s\nexec %s \"$@\"\n", shellQuote(in.pidFile), shellQuote(bin))
	if err := os.WriteFile(in.wrapper, []byte(script), 0o755); err != nil {
		return fmt.Errorf("writing the wrapper of instance %s: %w", in.name, err)
	}
	if err := os.WriteFile(in.guardFile, nil, 0o644); err != nil {
		return fmt.Errorf("writing the guard file of instance %s: %w", in.name, err)
	}
	const guard = `while [ "$(cut -d' ' -f4 /proc/$$/stat)" = "$1" ] && [ -e "$2" ]; do sleep 0.5; done
[ -e "$2" ] || exit 0
pid=$(cat "$3" 2>/dev/null) || exit 0
grep -qaF "$4" "/proc/$pid/cmdline" 2>/dev/null && kill -KILL "$pid"`
	w := exec.Command("/bin/sh", "-c", guard, "faxhook-fleet-guard", strconv.Itoa(os.Getpid()), in.guardFile, in.pidFile,
		filepath.Join(dir, "Caddyfile"))
	w.SysProcAttr = &syscall.SysProcAttr{Setsid: true} // outlives this process and its process group
	if err := w.Start(); err != nil {
		return fmt.Errorf("starting the guard of instance %s: %w", in.name, err)
	}
	go w.Wait()
	return nil
}

// shellQuote quotes s for sh.
func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// running marks the instance's process as up.
func (in *instance) running() { in.up.Store(true) }

// lastPid returns the pid of the instance's latest process, which its wrapper wrote as it
// started: known before Caddy answers, so that its first webhooks are traced to it too.
func (in *instance) lastPid() int {
	b, err := os.ReadFile(in.pidFile)
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

// release ends the instances' guards, once their processes are gone.
func (c *cluster) release() {
	for _, in := range c.insts {
		os.Remove(in.guardFile)
	}
}

// pids returns the instances by the pid of their latest process (which may have died since).
func (c *cluster) pids() map[int]string {
	m := make(map[int]string, len(c.insts))
	for _, in := range c.insts {
		if pid := in.lastPid(); pid != 0 {
			m[pid] = in.name
		}
	}
	return m
}

// restart starts a killed instance again.
func (c *cluster) restart(in *instance) error {
	if fi, err := os.Stat(in.caddy.Log); err == nil {
		in.logStart.Store(fi.Size())
	}
	if err := in.caddy.Start(); err != nil {
		return fmt.Errorf("restarting instance %s: %w", in.name, err)
	}
	in.running()
	return nil
}

// crash kills an instance with SIGKILL.
func (c *cluster) crash(in *instance) {
	in.up.Store(false)
	in.caddy.Kill()
}

// stop stops every running instance gracefully, killing those that do not stop, and ends the
// guards.
func (c *cluster) stop() error {
	defer c.release()
	errs := make([]error, len(c.insts))
	var wg sync.WaitGroup
	for i, in := range c.insts {
		if in.caddy == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			in.up.Store(false)
			if err := in.caddy.Stop(); err != nil {
				errs[i] = fmt.Errorf("stopping instance %s: %w", in.name, err)
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// kill kills every running instance.
func (c *cluster) kill() {
	for _, in := range c.insts {
		if in.caddy != nil {
			c.crash(in)
		}
	}
}

// pick returns an instance at random, up or not: a client behind a plain load balancer does not
// know which instance just died.
func (c *cluster) pick() *instance { return c.insts[rand.IntN(len(c.insts))] }

// pickUp returns a running instance at random, or nil when none runs.
func (c *cluster) pickUp() *instance {
	var up []*instance
	for _, in := range c.insts {
		if in.up.Load() {
			up = append(up, in)
		}
	}
	if len(up) == 0 {
		return nil
	}
	return up[rand.IntN(len(up))]
}

// leadership is what an instance says of the poller's lead.
type leadership int

const (
	leadUnknown leadership = iota // the instance does not answer, or exposes no leaderMetric
	leadNo
	leadYes
)

// leads asks an instance whether it leads: its leaderMetric, else, when it exposes none, whether
// its log since its last start says it took the lead.
func (c *cluster) leads(ctx context.Context, in *instance) leadership {
	if !in.up.Load() {
		return leadNo
	}
	if l := c.leadsByMetric(ctx, in); l != leadUnknown {
		return l
	}
	return leadsByLog(in.caddy.Log, in.logStart.Load())
}

// leadsByMetric reads leaderMetric from an instance's admin /metrics.
func (c *cluster) leadsByMetric(ctx context.Context, in *instance) leadership {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+in.admin+"/metrics", nil)
	if err != nil {
		return leadUnknown
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return leadUnknown
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return leadUnknown
	}
	return parseLeader(resp.Body)
}

// parseLeader finds leaderMetric in a Prometheus text exposition.
func parseLeader(r io.Reader) leadership {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		rest, ok := strings.CutPrefix(line, leaderMetric)
		if !ok || rest == "" || (rest[0] != ' ' && rest[0] != '{') {
			continue
		}
		f := strings.Fields(rest[strings.LastIndex(rest, "}")+1:])
		if len(f) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			continue
		}
		if v == 1 {
			return leadYes
		}
		return leadNo
	}
	return leadUnknown
}

// leadsByLog reads the log at path from offset (the process's last start) on: the later of
// leaderLogLine and leaderLostLine says whether it leads.
func leadsByLog(path string, offset int64) leadership {
	f, err := os.Open(path)
	if err != nil {
		return leadUnknown
	}
	defer f.Close()
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return leadUnknown
	}
	b, err := io.ReadAll(f)
	if err != nil {
		return leadUnknown
	}
	took, lost := strings.LastIndex(string(b), leaderLogLine), strings.LastIndex(string(b), leaderLostLine)
	if took > lost {
		return leadYes
	}
	return leadUnknown
}

// leader returns the instance that leads, or nil when none says so (yet).
func (c *cluster) leader(ctx context.Context) *instance {
	for _, in := range c.insts {
		if c.leads(ctx, in) == leadYes {
			return in
		}
	}
	return nil
}

// waitLeader waits until an instance other than not leads, and returns it, or nil when within
// passed first.
func (c *cluster) waitLeader(ctx context.Context, not *instance, within time.Duration) *instance {
	deadline := time.Now().Add(within)
	for {
		for _, in := range c.insts {
			if in != not && c.leads(ctx, in) == leadYes {
				return in
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// jobCounts are the fleet's jobs by state, as an instance's admin API counts them in the shared
// store.
type jobCounts struct {
	unfinished int // pending, waiting or under an attempt
	dead       int
	delivered  int
}

// jobs reads the job counts through a running instance's GET /faxhook/stats.
func (c *cluster) jobs(ctx context.Context) (jobCounts, error) {
	in := c.pickUp()
	if in == nil {
		return jobCounts{}, errors.New("no instance is up")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+in.admin+"/faxhook/stats", nil)
	if err != nil {
		return jobCounts{}, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return jobCounts{}, fmt.Errorf("reading the stats of instance %s: %w", in.name, err)
	}
	defer resp.Body.Close()
	var s struct {
		Jobs map[string]int `json:"jobs"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil || resp.StatusCode != http.StatusOK || s.Jobs == nil {
		return jobCounts{}, fmt.Errorf("reading the stats of instance %s: %s %v", in.name, resp.Status, err)
	}
	return jobCounts{
		unfinished: s.Jobs["pending"] + s.Jobs["waiting"] + s.Jobs["leased"],
		dead:       s.Jobs["dead"],
		delivered:  s.Jobs["delivered"],
	}, nil
}
