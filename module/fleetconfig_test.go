package module

import "testing"

func TestRedactDSN(t *testing.T) {
	for in, want := range map[string]string{
		"postgres://fax:s3cret@db.example:5432/faxhook?sslmode=require&password=x": "postgres://fax@db.example:5432/faxhook",
		"postgresql://db.example/faxhook":                                          "postgresql://db.example/faxhook",
		"postgres://fax:s3cret@":                                                   "postgres://…",
		"host=db password=s3cret":                                                  "postgres://…",
	} {
		if got := RedactDSN(in); got != want {
			t.Errorf("RedactDSN(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestPostgresConfigValidate(t *testing.T) {
	if err := (&PostgresConfig{MaxConns: 5}).validate("/var/lib/faxhook"); err == nil {
		t.Error("postgres options with a directory as storage: no error")
	}
	if err := (&PostgresConfig{MaxConns: 5}).validate("postgres://h/db"); err != nil {
		t.Errorf("valid options: %v", err)
	}
	if !IsPostgresDSN(" PostgreSQL://h/db") || IsPostgresDSN("/var/lib/postgres://x") {
		t.Error("IsPostgresDSN")
	}
}
