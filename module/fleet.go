package module

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/faxhook/caddy-faxhook/queue"
	"github.com/faxhook/caddy-faxhook/queue/pgstore"
)

// fleetRole is the leadership that runs the poller and the janitor: one instance of a fleet
// polls the fax service and purges old jobs, so that the service is not asked the same
// question by every instance and a purge is not done three times over.
const fleetRole = "poller+janitor"

// fleetLeaders is 1 while this process leads its fleet's poller and janitor (summed over
// engines; one engine per PostgreSQL store in a process).
var fleetLeaders atomic.Int64

// metricFleetLeader shows which instance of a fleet leads; it is registered with the others.
var metricFleetLeader = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
	Namespace: "faxhook", Name: "fleet_leader",
	Help: "1 while this instance leads its fleet's poller and janitor (PostgreSQL storage), else 0; always 0 with the embedded store, whose instance does both alone.",
}, func() float64 { return float64(fleetLeaders.Load()) })

// fleet is what an engine over a PostgreSQL store adds to one over Badger: the candidacy for
// the lead of the poller and the janitor, and the janitor's loop, which sweeps only while this
// instance leads. The dispatcher needs nothing from it: it claims jobs in the shared store by
// itself (queue.Shared).
type fleet struct {
	pg   *pgstore.Store
	lead *pgstore.Leadership
	log  func() *zap.Logger

	jan  atomic.Pointer[queue.JanitorOptions] // the newest config's janitor options; nil until start
	kick chan struct{}                        // the janitor options changed
	stop chan struct{}
	done chan struct{}
	once sync.Once
}

// newFleet starts the candidacy and the loop that follows it.
func newFleet(pg *pgstore.Store, log func() *zap.Logger) *fleet {
	f := &fleet{pg: pg, lead: pg.Leader(fleetRole), log: log, kick: make(chan struct{}, 1),
		stop: make(chan struct{}), done: make(chan struct{})}
	go f.loop()
	return f
}

// leads reports whether this instance runs the poller and the janitor now. A nil fleet (the
// embedded store) always does.
func (f *fleet) leads() bool { return f == nil || f.lead.Held() }

// startJanitor sets the janitor's options; the loop sweeps with them while this instance leads.
func (f *fleet) startJanitor(opts queue.JanitorOptions) {
	f.jan.Store(&opts)
	select {
	case f.kick <- struct{}{}:
	default:
	}
}

// loop logs and shows changes of the lead, and sweeps at the janitor's interval while leading,
// once at once when the lead is taken.
func (f *fleet) loop() {
	defer close(f.done)
	leading := false
	var tick <-chan time.Time
	var ticker *time.Ticker
	defer func() {
		if ticker != nil {
			ticker.Stop()
		}
		if leading {
			fleetLeaders.Add(-1)
		}
	}()
	for {
		now := f.lead.Held()
		if now != leading {
			leading = now
			if leading {
				fleetLeaders.Add(1)
				f.log().Info("fleet: this instance leads the poller and janitor")
				f.sweep()
			} else {
				fleetLeaders.Add(-1)
				f.log().Warn("fleet: this instance no longer leads the poller and janitor; another instance takes over")
			}
		}
		if opts := f.jan.Load(); opts != nil {
			interval := cmp.Or(opts.Interval, queue.DefaultJanitorInterval)
			if ticker == nil {
				ticker = time.NewTicker(interval)
				tick = ticker.C
			} else {
				ticker.Reset(interval)
			}
		}
		select {
		case <-f.stop:
			return
		case <-f.lead.Changes():
		case <-f.kick:
		case <-tick:
			if leading {
				f.sweep()
			}
		}
	}
}

// sweep purges the fleet's finished jobs past their retention once.
func (f *fleet) sweep() {
	opts := f.jan.Load()
	if opts == nil {
		return
	}
	log := cmp.Or(opts.Logger, f.log())
	res := queue.Sweep(f.pg, *opts, time.Now())
	switch {
	case errors.Is(res.Err, queue.ErrClosed):
	case res.Err != nil:
		log.Error("purging finished webhook jobs", zap.Int("delivered", res.Delivered), zap.Int("dead", res.Dead), zap.Error(res.Err))
	case res.Delivered+res.Dead > 0:
		log.Info("purged finished webhook jobs past their retention", zap.Int("delivered", res.Delivered), zap.Int("dead", res.Dead))
	}
	if opts.OnSweep != nil {
		opts.OnSweep(res)
	}
}

// close ends the candidacy (releasing the lead, so another instance takes it at its next try)
// and the loop. Closing a nil fleet does nothing.
func (f *fleet) close() {
	if f == nil {
		return
	}
	f.once.Do(func() {
		close(f.stop)
		<-f.done
		f.lead.Close()
	})
}

// fleetStore is the storage of an engine over PostgreSQL: the store and the local directory of
// the instance's send journal.
type fleetStore struct {
	store      *pgstore.Store
	journalDir string
}

// openFleetStore opens the PostgreSQL store of dsn (placeholders already replaced). Errors
// never show the DSN: it may hold a password.
func openFleetStore(dsn string, cfg *PostgresConfig, log *zap.Logger) (fleetStore, error) {
	if cfg == nil {
		cfg = &PostgresConfig{}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := pgstore.Open(ctx, dsn, pgstore.Options{
		MaxConns:         int32(cfg.MaxConns),
		StatementTimeout: time.Duration(cfg.StatementTimeout),
		Logger:           log.Named("postgres"),
	})
	if err != nil {
		return fleetStore{}, fmt.Errorf("opening the faxhook store at %s: %w", RedactDSN(dsn), err)
	}
	dir := cfg.Journal
	if dir == "" {
		dir = filepath.Join(caddy.AppDataDir(), "faxhook-journal")
	}
	if dir, err = filepath.Abs(dir); err != nil {
		st.Close()
		return fleetStore{}, fmt.Errorf("resolving the journal directory %q: %w", cfg.Journal, err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		st.Close()
		return fleetStore{}, fmt.Errorf("creating the journal directory: %w", err)
	}
	return fleetStore{store: st, journalDir: dir}, nil
}
