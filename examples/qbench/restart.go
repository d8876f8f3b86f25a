package qbench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"time"

	"github.com/faxhook/caddy-faxhook/queue"
	"github.com/faxhook/caddy-faxhook/queue/httpsend"
)

// Environment of the re-executed child of case (c).
const (
	envChild = "QBENCH_CHILD" // "restart" makes ChildMain run the child
	envDir   = "QBENCH_DIR"   // the store to open
	envSync  = "QBENCH_SYNC"  // "1" for sync_writes on
)

// childReport is what the child of case (c) prints on stdout, as JSON.
type childReport struct {
	OpenMS     float64 `json:"open_ms"`     // OpenBadger
	DeliveryMS float64 `json:"delivery_ms"` // process start to the first outcome stored
	VmHWMKB    int64   `json:"vm_hwm_kb"`   // peak resident set size
	VmRSSKB    int64   `json:"vm_rss_kb"`   // resident set size after the delivery
	Error      string  `json:"error,omitempty"`
}

// ChildMain runs the child process of case (c) and exits, when the environment asks for it
// (QBENCH_CHILD=restart); otherwise it returns at once. Call it first thing in main (and in
// TestMain), since case (c) re-executes the running binary.
func ChildMain() {
	if os.Getenv(envChild) != "restart" {
		return
	}
	rep := runChild()
	_ = json.NewEncoder(os.Stdout).Encode(rep)
	if rep.Error != "" {
		os.Exit(1)
	}
	os.Exit(0)
}

// runChild opens the store, starts a dispatcher and waits for its first delivery.
func runChild() childReport {
	start := time.Now()
	st, err := queue.OpenBadger(os.Getenv(envDir), queue.BadgerOptions{SyncWrites: os.Getenv(envSync) == "1"})
	if err != nil {
		return childReport{Error: err.Error()}
	}
	defer st.Close()
	opened := time.Since(start)
	first := make(chan queue.Result, 1)
	var once sync.Once
	sender := httpsend.New(httpsend.Options{Token: benchToken})
	d := queue.NewDispatcher(st, sender, queue.Options{
		OnOutcome: func(_ *queue.Job, res queue.Result) { once.Do(func() { first <- res }) },
	})
	if err := d.Start(); err != nil {
		return childReport{Error: err.Error()}
	}
	defer d.Stop()
	select {
	case res := <-first:
		if res.Err != nil {
			return childReport{Error: "first delivery failed: " + res.Err.Error()}
		}
	case <-time.After(time.Minute):
		return childReport{Error: "no delivery within a minute"}
	}
	return childReport{
		OpenMS: ms(opened), DeliveryMS: ms(time.Since(start)),
		VmHWMKB: procStatusKB("VmHWM"), VmRSSKB: procStatusKB("VmRSS"),
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// restartResult is the outcome of one restart of case (c).
type restartResult struct {
	child    childReport
	firstHit time.Duration // child exec to the receiver's first hit, seen by the parent
}

// fillPending stores n jobs due between one hour and one day from now, spread over 100
// destinations, and one job due now to dueURL, and returns how long that took.
func fillPending(ctx context.Context, dir string, n int, dueURL string, progress func(string, ...any)) (time.Duration, error) {
	st, err := queue.OpenBadger(dir, queue.BadgerOptions{SyncWrites: false})
	if err != nil {
		return 0, err
	}
	defer st.Close()
	start := time.Now()
	const perTx = 256
	workers := 2
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for first := w * perTx; first < n; first += workers * perTx {
				if ctx.Err() != nil {
					errs <- ctx.Err()
					return
				}
				err := st.Update(func(tx queue.Tx) error {
					for i := first; i < min(first+perTx, n); i++ {
						due := start.Add(time.Hour + time.Duration(i%82800)*time.Second)
						j := makeJob(int64(10_000_000+i), fmt.Sprintf("https://hooks-%d.example.com/fax", i%100), start, due)
						if _, err := tx.Enqueue(j); err != nil {
							return err
						}
					}
					return nil
				})
				if err != nil {
					errs <- fmt.Errorf("filling pending jobs: %w", err)
					return
				}
				if w == 0 && (first/perTx)%800 == 0 && first > 0 {
					progress("  (c) %d of %d pending jobs stored", first, n)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return 0, err
	}
	took := time.Since(start)
	return took, addDueJob(st, dueURL, 0)
}

// openQueue opens the store of (c) in this process.
func openQueue(dir string) (*queue.Badger, error) {
	return queue.OpenBadger(dir, queue.BadgerOptions{})
}

// addDueJob stores the job that the restarted child must deliver first.
func addDueJob(st queue.Store, url string, seq int) error {
	now := time.Now()
	j := makeJob(int64(seq), url, now, now.Add(-time.Minute))
	j.ID = fmt.Sprintf("qbench-due-%d", seq)
	return st.Update(func(tx queue.Tx) error { _, err := tx.Enqueue(j); return err })
}

// restartOnce re-executes this binary as the child over dir and times it until rcv's first hit.
func restartOnce(ctx context.Context, dir string, syncWrites bool, hits <-chan time.Time) (restartResult, error) {
	exe, err := os.Executable()
	if err != nil {
		return restartResult{}, fmt.Errorf("finding this executable: %w", err)
	}
	sync := "0"
	if syncWrites {
		sync = "1"
	}
	cmd := exec.CommandContext(ctx, exe)
	cmd.Env = append(os.Environ(), envChild+"=restart", envDir+"="+dir, envSync+"="+sync)
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return restartResult{}, fmt.Errorf("starting the child: %w", err)
	}
	var res restartResult
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	select {
	case at := <-hits:
		res.firstHit = at.Sub(start)
	case err := <-waited:
		return res, fmt.Errorf("child exited before the delivery: %v: %s%s", err, out.Bytes(), stderr.Bytes())
	}
	if err := <-waited; err != nil {
		return res, fmt.Errorf("child: %w: %s%s", err, out.Bytes(), stderr.Bytes())
	}
	if err := json.Unmarshal(out.Bytes(), &res.child); err != nil {
		return res, fmt.Errorf("reading the child's report %q: %w", out.Bytes(), err)
	}
	return res, nil
}
