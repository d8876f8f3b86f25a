package bench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/faxhook/caddy-faxhook/examples/harness"
)

// Variant is one of the two Caddy configurations under test.
type Variant int

const (
	// Bare is Caddy with reverse_proxy alone.
	Bare Variant = iota
	// Faxhook is Caddy with the faxhook directive in front of the same reverse_proxy.
	Faxhook
)

// String names the variant as the report does.
func (v Variant) String() string {
	if v == Faxhook {
		return "faxhook"
	}
	return "bare"
}

// caddyfileParams are the inputs of caddyfile.
type caddyfileParams struct {
	admin, site, upstream string
	faxhook               bool
	storage, sentURL      string
	warnLog               string // faxhook's own warnings, when set
	faxhookOptions        []string
}

// caddyfile returns the benchmark's Caddyfile. Both variants get the same text except the faxhook
// global option and the faxhook directive line. Logging is raised to ERROR and there is no access
// log, so that logging does not dominate.
func caddyfile(p caddyfileParams) string {
	var b strings.Builder
	fmt.Fprintf(&b, "{\n\tadmin %s\n\tauto_https off\n\tlog {\n\t\tlevel ERROR\n\t}\n", p.admin)
	if p.faxhook && p.warnLog != "" {
		// faxhook's warnings (dropped observations) go to a file of their own so the benchmark
		// can count them; in production they go to Caddy's log at its default level, INFO.
		fmt.Fprintf(&b, "\tlog faxhookwarn {\n\t\toutput file %s\n\t\tlevel WARN\n\t\tinclude faxhook http.handlers.faxhook\n\t}\n", p.warnLog)
	}
	if p.faxhook {
		fmt.Fprintf(&b, "\tfaxhook {\n\t\tstorage %s\n\t\tsent_url %s\n", p.storage, p.sentURL)
		for _, o := range p.faxhookOptions {
			fmt.Fprintf(&b, "\t\t%s\n", o)
		}
		b.WriteString("\t}\n")
	}
	fmt.Fprintf(&b, "}\n\nhttp://%s {\n", p.site)
	if p.faxhook {
		b.WriteString("\tfaxhook\n")
	}
	fmt.Fprintf(&b, "\treverse_proxy %s\n}\n", p.upstream)
	return b.String()
}

// caddyProc is one running Caddy of the benchmark.
type caddyProc struct {
	*harness.Caddy
	variant Variant
	site    string // base URL of the site
	pid     int    // 0 if it could not be found
	warnLog string // faxhook's warnings; empty for the bare Caddy
}

// startCaddy starts one variant's Caddy under dir, with env added to its environment, and waits
// until the site answers.
func startCaddy(bin, dir string, v Variant, upstreamURL, sinkURL string, faxhookOptions, env []string) (*caddyProc, error) {
	admin, err := harness.FreeAddr()
	if err != nil {
		return nil, err
	}
	site, err := harness.FreeAddr()
	if err != nil {
		return nil, err
	}
	var warnLog string
	if v == Faxhook {
		warnLog = filepath.Join(dir, "faxhook-warn.log")
	}
	cf := caddyfile(caddyfileParams{
		admin: admin, site: site, upstream: upstreamURL,
		faxhook: v == Faxhook, storage: filepath.Join(dir, "storage"), sentURL: sinkURL + "/sent",
		warnLog: warnLog, faxhookOptions: faxhookOptions,
	})
	c, err := harness.StartCaddy(bin, filepath.Join(dir, "caddy"), admin, cf, env...)
	if err != nil {
		return nil, fmt.Errorf("%s caddy: %w", v, err)
	}
	p := &caddyProc{Caddy: c, variant: v, site: "http://" + site, warnLog: warnLog}
	p.pid, _ = findPID(filepath.Join(c.Dir, "Caddyfile"))
	// The admin endpoint answers before the HTTP server is guaranteed to; wait for the site.
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(p.site + "/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p, nil
			}
		}
		if time.Now().After(deadline) {
			c.Stop()
			return nil, fmt.Errorf("%s caddy: site %s not answering /health (last: %v); log:\n%s", v, p.site, err, c.Tail(40))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// findPID finds the process running `caddy run --config <caddyfile>`: harness.Caddy does not
// expose its pid, and every benchmark Caddy has a Caddyfile path of its own. Linux only.
func findPID(caddyfile string) (int, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0, err
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := bytes.Split(bytes.TrimRight(b, "\x00"), []byte{0})
		for i := 0; i+1 < len(args); i++ {
			if string(args[i]) == "--config" && string(args[i+1]) == caddyfile {
				return pid, nil
			}
		}
	}
	return 0, errors.New("caddy process not found in /proc")
}

// Memory is a process's resident memory as /proc/<pid>/status reports it.
type Memory struct {
	// PID is the process id (0: unknown, and the sizes are 0).
	PID int
	// PeakRSS is VmHWM, the peak resident set size, in bytes.
	PeakRSS int64
	// RSS is VmRSS, the resident set size when read, in bytes.
	RSS int64
}

// readMemory reads VmHWM and VmRSS of pid.
func readMemory(pid int) (Memory, error) {
	m := Memory{PID: pid}
	if pid == 0 {
		return m, errors.New("no pid")
	}
	f, err := os.Open(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		return m, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, val, ok := strings.Cut(sc.Text(), ":")
		if !ok || (name != "VmHWM" && name != "VmRSS") {
			continue
		}
		fields := strings.Fields(val) // "123456 kB"
		if len(fields) == 0 {
			continue
		}
		kb, err := strconv.ParseInt(fields[0], 10, 64)
		if err != nil {
			continue
		}
		if name == "VmHWM" {
			m.PeakRSS = kb << 10
		} else {
			m.RSS = kb << 10
		}
	}
	return m, sc.Err()
}

// clockTick is the unit of utime and stime in /proc/<pid>/stat (USER_HZ, 100 on Linux).
const clockTick = 10 * time.Millisecond

// cpuTime returns the CPU time (user + system) pid has used so far. Linux only.
func cpuTime(pid int) (time.Duration, error) {
	if pid == 0 {
		return 0, errors.New("no pid")
	}
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0, err
	}
	// The command name in parentheses may contain spaces; the fields after it are fixed.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("malformed stat")
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return 0, errors.New("short stat")
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	return time.Duration(ut+st) * clockTick, nil
}

// settle waits until every process in pids is idle (at most one clock tick of CPU in two
// consecutive 100ms windows) and returns how long that took. Processes without a pid are
// ignored. It gives up after limit and returns limit.
func settle(ctx context.Context, pids []int, limit time.Duration) time.Duration {
	const window = 100 * time.Millisecond
	start := time.Now()
	prev := make([]time.Duration, len(pids))
	for i, p := range pids {
		prev[i], _ = cpuTime(p)
	}
	quiet := 0
	for quiet < 2 {
		if time.Since(start) >= limit {
			return limit
		}
		select {
		case <-ctx.Done():
			return time.Since(start)
		case <-time.After(window):
		}
		busy := false
		for i, p := range pids {
			if p == 0 {
				continue
			}
			c, err := cpuTime(p)
			if err != nil {
				continue
			}
			if c-prev[i] > clockTick {
				busy = true
			}
			prev[i] = c
		}
		if busy {
			quiet = 0
		} else {
			quiet++
		}
	}
	// The two quiet windows are not part of the busy time.
	return max(time.Since(start)-2*window, 0)
}

// dropMessage is the warning faxhook logs for each observation it drops.
const dropMessage = "observation backlog full"

// drops counts the dropped observations logged so far (0 for the bare Caddy).
func (c *caddyProc) drops() int64 {
	if c.warnLog == "" {
		return 0
	}
	b, err := os.ReadFile(c.warnLog)
	if err != nil {
		return 0
	}
	return int64(bytes.Count(b, []byte(dropMessage)))
}

// loadAvg returns the 1-minute load average, or -1 if unknown. Linux only.
func loadAvg() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return -1
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return -1
	}
	v, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return -1
	}
	return v
}

// goStats are a Caddy's Go runtime counters, read from its admin endpoint's /metrics (Caddy
// registers Prometheus' Go collector there).
type goStats struct {
	gcCycles   int64 // go_gc_duration_seconds_count: completed GC cycles
	allocBytes int64 // go_memstats_alloc_bytes_total: bytes allocated on the heap so far
	heapBytes  int64 // go_memstats_heap_alloc_bytes: heap objects now, live and not yet swept
}

// readGoStats scrapes the Go runtime counters of the Caddy whose admin endpoint is admin. The
// scrape costs the Caddy a little CPU, so callers read it outside a measured window.
func readGoStats(admin string) (goStats, error) {
	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		return goStats{}, err
	}
	defer resp.Body.Close()
	var s goStats
	found := 0
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		name, val, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		var dst *int64
		switch name {
		case "go_gc_duration_seconds_count":
			dst = &s.gcCycles
		case "go_memstats_alloc_bytes_total":
			dst = &s.allocBytes
		case "go_memstats_heap_alloc_bytes":
			dst = &s.heapBytes
		default:
			continue
		}
		f, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
		if err != nil {
			continue
		}
		*dst = int64(f)
		found++
	}
	if err := sc.Err(); err != nil {
		return s, err
	}
	if found < 3 {
		return s, errors.New("go runtime metrics missing from /metrics")
	}
	return s, nil
}
