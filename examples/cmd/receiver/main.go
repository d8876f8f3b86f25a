// Command receiver runs a Phaxio-style webhook receiver for demos: it verifies
// X-Phaxio-Signature, writes every delivery as a JSON line and prints a one-line summary of each
// to stderr.
//
// Usage:
//
//	receiver [-listen 127.0.0.1:8091] [-token TOKEN] [-out FILE] [-fail-first N]
//
// The token defaults to $FAXHOOK_TOKEN; without one, deliveries are accepted unverified.
// -fail-first N answers 500 to the first N deliveries, to demonstrate retries. The receiver
// stops on SIGINT or SIGTERM.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/faxhook/caddy-faxhook/examples/receiver"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:8091", "address to listen on")
	token := flag.String("token", os.Getenv("FAXHOOK_TOKEN"), "webhook token (default $FAXHOOK_TOKEN); empty = do not verify")
	out := flag.String("out", "", "file to append deliveries to as JSON lines (default stdout)")
	failFirst := flag.Int("fail-first", 0, "answer 500 to the first `N` deliveries")
	baseURL := flag.String("base-url", "", "public base URL (scheme://host[:port]) to verify against instead of the request's Host")
	flag.Parse()

	log.SetFlags(0)
	log.SetPrefix("receiver: ")
	if err := run(*listen, *token, *out, *baseURL, *failFirst); err != nil {
		log.Fatal(err)
	}
}

func run(listen, token, outPath, baseURL string, failFirst int) error {
	var out io.Writer = os.Stdout
	if outPath != "" && outPath != "-" {
		f, err := os.OpenFile(outPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if err != nil {
			return err
		}
		defer f.Close()
		out = f
	}

	rcv := receiver.New(receiver.Config{
		Token:   token,
		Out:     out,
		BaseURL: baseURL,
		Respond: func(d receiver.Delivery) int {
			label := verdict(d, token != "")
			if d.Seq <= failFirst {
				d.Status = http.StatusInternalServerError
			}
			fmt.Fprintln(os.Stderr, summary(label, d))
			return d.Status
		},
	})

	srv := &http.Server{Addr: listen, Handler: rcv, ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	mode := "verifying with token"
	if token == "" {
		mode = "NOT verifying (no token)"
	}
	log.Printf("listening on http://%s, %s", listen, mode)

	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Printf("shutting down after %d deliveries", rcv.Count())
	shutCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutCtx); err != nil {
		return err
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// verdict classifies d by its default status (before any -fail-first override).
func verdict(d receiver.Delivery, verifying bool) string {
	switch {
	case d.Status == http.StatusBadRequest || d.Status == http.StatusRequestEntityTooLarge:
		return "BAD REQUEST"
	case d.Verified:
		return "verified"
	case verifying:
		return "INVALID SIGNATURE"
	default:
		return "unverified"
	}
}

// summary renders one human-readable line for d, such as
// "verified fax_completed fax=1234 status=success url=... http=200".
func summary(label string, d receiver.Delivery) string {
	var b strings.Builder
	b.WriteString(label)
	if ev := d.Fields["event_type"]; ev != "" {
		b.WriteString(" " + ev)
	}
	var fax struct {
		ID        json.Number `json:"id"`
		Status    string      `json:"status"`
		Direction string      `json:"direction"`
	}
	if s := d.Fields["fax"]; s != "" && json.Unmarshal([]byte(s), &fax) == nil {
		if fax.ID != "" {
			fmt.Fprintf(&b, " fax=%s", fax.ID)
		}
		if fax.Direction != "" {
			fmt.Fprintf(&b, " direction=%s", fax.Direction)
		}
		if fax.Status != "" {
			fmt.Fprintf(&b, " status=%s", fax.Status)
		}
	}
	for _, k := range []string{"page", "retry_count", "recipient_phone_number"} {
		if v, ok := d.Fields[k]; ok {
			fmt.Fprintf(&b, " %s=%s", k, v)
		}
	}
	for _, f := range d.Files {
		fmt.Fprintf(&b, " %s=%s(%d bytes)", f.Name, f.Filename, f.Size)
	}
	fmt.Fprintf(&b, " url=%s seq=%d http=%d", d.URL, d.Seq, d.Status)
	if d.Error != "" {
		fmt.Fprintf(&b, " error=%q", d.Error)
	}
	return b.String()
}
