package qbench

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/faxhook/caddy-faxhook/queue"
	"github.com/faxhook/caddy-faxhook/queue/pgstore"
	"github.com/faxhook/caddy-faxhook/queue/pgstore/pgtest"
)

// opener returns a fresh, empty store for one run and what removes it.
type opener func() (queue.Store, func(), error)

// badgerStore opens a Badger store in a new directory under parent.
func badgerStore(parent, prefix string, syncWrites bool) opener {
	return func() (queue.Store, func(), error) {
		dir, cleanup, err := tempDir(parent, prefix)
		if err != nil {
			return nil, nil, err
		}
		st, err := queue.OpenBadger(dir, queue.BadgerOptions{SyncWrites: syncWrites})
		if err != nil {
			cleanup()
			return nil, nil, err
		}
		return st, func() { st.Close(); cleanup() }, nil
	}
}

// startPostgres starts a throwaway PostgreSQL server on loopback that fsyncs its commits as a
// production server does (PGTEST_FSYNC=on): the fleet figures compare it with Badger syncing
// its writes.
func startPostgres() (*pgtest.Server, error) {
	os.Setenv("PGTEST_FSYNC", "on")
	srv, err := pgtest.StartServer()
	if err != nil {
		return nil, fmt.Errorf("starting PostgreSQL for the fleet case: %w", err)
	}
	return srv, nil
}

// postgresStore opens the PostgreSQL store on a new database of srv.
func postgresStore(srv *pgtest.Server) opener {
	return func() (queue.Store, func(), error) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		dsn, err := srv.NewDatabase(ctx)
		if err != nil {
			return nil, nil, err
		}
		st, err := pgstore.Open(ctx, dsn, pgstore.Options{})
		if err != nil {
			return nil, nil, err
		}
		return st, func() { st.Close() }, nil
	}
}
