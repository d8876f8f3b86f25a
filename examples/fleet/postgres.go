package fleet

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/faxhook/caddy-faxhook/queue/pgstore/pgtest"
)

// database is the fleet's PostgreSQL: a throwaway server on loopback with one database that
// every instance shares.
//
// It is pgtest's server, used outside tests: it runs as the postgres user when this process is
// root, and it dies with this process however that ends (pgtest's watchdog). Its fsync=off does
// not matter here: the runs kill Caddy, never PostgreSQL or the machine.
type database struct {
	srv *pgtest.Server
	dsn string
}

// databaseName is the database the instances share.
const databaseName = "faxhook"

// startDatabase starts a server and creates the shared database, which must exist before Caddy
// starts.
func startDatabase(ctx context.Context) (*database, error) {
	srv, err := pgtest.StartServer()
	if err != nil {
		return nil, fmt.Errorf("starting PostgreSQL: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, srv.DSN("postgres"))
	if err != nil {
		srv.Stop()
		return nil, fmt.Errorf("connecting to PostgreSQL: %w", err)
	}
	defer c.Close(context.Background())
	if _, err := c.Exec(ctx, "CREATE DATABASE "+databaseName+" TEMPLATE template0"); err != nil {
		srv.Stop()
		return nil, fmt.Errorf("creating database %s: %w", databaseName, err)
	}
	return &database{srv: srv, dsn: srv.DSN(databaseName)}, nil
}

// stop stops the server and removes its directory.
func (d *database) stop() error { return d.srv.Stop() }
