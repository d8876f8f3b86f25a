// Package pgtest runs a throwaway PostgreSQL server for tests, on Unix: one server per test
// binary, on loopback, in a temporary directory, with a fresh database for each test that asks
// for one.
//
//	func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }
//
//	func TestSomething(t *testing.T) {
//		dsn := pgtest.Start(t) // a new, empty database
//		...
//	}
//
// The server runs with fsync=off and full_page_writes=off: a test server's data need not survive
// a power loss, and flushing costs most of a commit's time on a test machine. Nothing else may
// rely on those settings. PGTEST_FSYNC=on in the environment keeps fsync on, for measurements
// whose point is the cost of durable commits.
// PGTEST_SETTINGS adds server settings, name=value separated by spaces (for instance
// shared_preload_libraries=pg_stat_statements to see where a benchmark's server time goes).
//
// The server never outlives the test binary: Main stops it when the tests end; if the binary dies
// first (a panic, a timeout's SIGQUIT, a SIGKILL), the kernel sends the server SIGQUIT on the
// binary's death (Linux), and a watchdog shell loop that polls the binary's pid stops the server
// and removes its directory.
package pgtest
