package module

import (
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
)

// PostgresConfig tunes the PostgreSQL store of a fleet: several Caddy instances that share one
// queue, whose App.Storage is a postgres:// (or postgresql://) URL. Every field is optional.
type PostgresConfig struct {
	// MaxConns is the most connections one instance opens to PostgreSQL for its transactions.
	// Two more are held apart from them: one listens for the fleet's wake-ups, one holds (or
	// tries to take) the lead of the poller and the janitor. Default 10, at most 1000.
	MaxConns int `json:"max_conns,omitempty"`
	// StatementTimeout bounds each statement on the server, lock waits included (PostgreSQL's
	// statement_timeout). Default 30s.
	StatementTimeout caddy.Duration `json:"statement_timeout,omitempty"`
	// Journal is the directory of this instance's send journal (see SyncWrites): it stays on
	// local disk, one per instance, and is replayed into the shared store at start. Default:
	// `faxhook-journal` in Caddy's data directory. Two instances must not share it.
	Journal string `json:"journal,omitempty"`
	// Instance names this instance in the claim tokens of the jobs it attempts (shown by the
	// admin API) and in its log. Default: the host name.
	Instance string `json:"instance,omitempty"`
}

// MaxPostgresConns bounds PostgresConfig.MaxConns.
const MaxPostgresConns = 1000

// IsPostgresDSN reports whether a storage value names a PostgreSQL database rather than a
// directory. Placeholders are replaced first, so `storage {env.FAXHOOK_DSN}` works.
func IsPostgresDSN(storage string) bool {
	s := strings.ToLower(strings.TrimSpace(storage))
	return strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://")
}

// validate checks the options; dsn is the storage value after replacing placeholders.
func (p *PostgresConfig) validate(dsn string) error {
	if p == nil {
		return nil
	}
	if p.MaxConns < 0 || p.MaxConns > MaxPostgresConns {
		return fmt.Errorf("postgres max_conns: %d is out of range; allowed: 1 to %d", p.MaxConns, MaxPostgresConns)
	}
	if p.StatementTimeout < 0 || (p.StatementTimeout > 0 && time.Duration(p.StatementTimeout) < time.Second) {
		return fmt.Errorf("postgres statement_timeout: %s is too short; at least 1s", time.Duration(p.StatementTimeout))
	}
	if dsn != "" && !IsPostgresDSN(dsn) {
		return fmt.Errorf("postgres options are set, but storage is not a postgres:// URL")
	}
	return nil
}

// RedactDSN returns a PostgreSQL URL without its password and query (which may hold one, as
// `password=`): what faxhook shows of it in logs and the admin API. A value it cannot parse is
// shown as "postgres://…".
func RedactDSN(dsn string) string {
	u, err := url.Parse(strings.TrimSpace(dsn))
	if err != nil || u.Host == "" {
		return "postgres://…"
	}
	if u.User != nil {
		u.User = url.User(u.User.Username())
	}
	u.RawQuery, u.Fragment = "", ""
	return u.String()
}
