// Package harness runs a real Caddy process with the faxhook plugin and talks to a fax service
// through it. The demo, the end-to-end tests and the tools under examples/ share it.
package harness

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"
)

// FreeAddr returns a loopback address with a port that was free a moment ago.
func FreeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("finding a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// Serve runs h on a loopback port and returns its base URL and a function that stops it.
func Serve(h http.Handler) (url string, stop func(), err error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, fmt.Errorf("listening on loopback: %w", err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(l)
	return "http://" + l.Addr().String(), func() { srv.Close() }, nil
}

var (
	buildOnce sync.Once
	buildBin  string
	buildErr  error
)

// CaddyBinary returns the path of a Caddy binary with the faxhook plugin: $FAXHOOK_CADDY when set
// (the one `./xcaddy.sh build` made), else one built once per process with `go build` from
// examples/cmd/caddy.
func CaddyBinary() (string, error) {
	if p := os.Getenv("FAXHOOK_CADDY"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("FAXHOOK_CADDY=%s: %w", p, err)
		}
		return p, nil
	}
	buildOnce.Do(func() {
		_, file, _, _ := runtime.Caller(0)
		root := filepath.Join(filepath.Dir(file), "..", "..")
		dir, err := os.MkdirTemp("", "faxhook-caddy-")
		if err != nil {
			buildErr = err
			return
		}
		buildBin = filepath.Join(dir, "caddy")
		cmd := exec.Command("go", "build", "-o", buildBin, "./examples/cmd/caddy")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("building caddy: %w\n%s", err, out)
		}
	})
	return buildBin, buildErr
}

// Caddy is a running Caddy process.
type Caddy struct {
	// Admin is the admin endpoint's address.
	Admin string
	// Dir holds the Caddyfile, Caddy's data and config directories and the log.
	Dir string
	// Log is the file that receives Caddy's output.
	Log string

	bin  string
	env  []string
	cmd  *exec.Cmd
	done chan error
}

// StartCaddy writes caddyfile to dir and runs bin on it with the extra environment env. The
// Caddyfile must set `admin` to adminAddr. StartCaddy returns once the admin endpoint answers.
func StartCaddy(bin, dir, adminAddr, caddyfile string, env ...string) (*Caddy, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "Caddyfile"), []byte(caddyfile), 0o644); err != nil {
		return nil, err
	}
	c := &Caddy{Admin: adminAddr, Dir: dir, Log: filepath.Join(dir, "caddy.log"), bin: bin, env: env}
	return c, c.Start()
}

// Start (re)starts the process on the Caddyfile in Dir.
func (c *Caddy) Start() error {
	logf, err := os.OpenFile(c.Log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(c.bin, "run", "--config", filepath.Join(c.Dir, "Caddyfile"), "--adapter", "caddyfile")
	cmd.Env = append(os.Environ(),
		"XDG_DATA_HOME="+filepath.Join(c.Dir, "data"),
		"XDG_CONFIG_HOME="+filepath.Join(c.Dir, "config"),
		"HOME="+c.Dir)
	cmd.Env = append(cmd.Env, c.env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("starting caddy: %w", err)
	}
	c.cmd, c.done = cmd, make(chan error, 1)
	go func() { c.done <- cmd.Wait(); logf.Close() }()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-c.done:
			c.done <- err
			return fmt.Errorf("caddy exited at start (%v); log:\n%s", err, c.Tail(40))
		default:
		}
		resp, err := http.Get("http://" + c.Admin + "/config/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	c.Kill()
	return fmt.Errorf("caddy did not come up within 60s; log:\n%s", c.Tail(40))
}

// Tail returns the last n lines of Caddy's log.
func (c *Caddy) Tail(n int) string {
	b, _ := os.ReadFile(c.Log)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Kill ends the process with SIGKILL, as a crash would, and waits for it.
func (c *Caddy) Kill() {
	if c.cmd == nil {
		return
	}
	c.cmd.Process.Kill()
	<-c.done
	c.cmd = nil
}

// Stop ends the process gracefully (SIGINT), killing it after 20s.
func (c *Caddy) Stop() error {
	if c.cmd == nil {
		return nil
	}
	c.cmd.Process.Signal(syscall.SIGINT)
	var err error
	select {
	case err = <-c.done:
	case <-time.After(20 * time.Second):
		c.cmd.Process.Kill()
		err = errors.Join(errors.New("caddy did not stop within 20s"), <-c.done)
	}
	c.cmd = nil
	return err
}

// Reload loads a new Caddyfile through the admin API, as `caddy reload` does.
func (c *Caddy) Reload(caddyfile string) error {
	if err := os.WriteFile(filepath.Join(c.Dir, "Caddyfile"), []byte(caddyfile), 0o644); err != nil {
		return err
	}
	req, _ := http.NewRequest(http.MethodPost, "http://"+c.Admin+"/load", strings.NewReader(caddyfile))
	req.Header.Set("Content-Type", "text/caddyfile")
	req.Header.Set("Cache-Control", "must-revalidate") // force a reload even if unchanged
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("reloading caddy: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("reloading caddy: %s: %s", resp.Status, b)
	}
	// The old config's server may close keep-alive connections that a client would otherwise
	// reuse for a POST, which net/http does not retry.
	http.DefaultClient.CloseIdleConnections()
	return nil
}

// Client talks to a Phaxio-style fax API (through Caddy).
type Client struct {
	// Base is the API root, e.g. http://127.0.0.1:8080/v2.1.
	Base string
	// Key and Secret are the HTTP Basic credentials.
	Key, Secret string
	// Bearer, when set, is sent as `Authorization: Bearer …` instead of Key and Secret.
	Bearer string
	// HTTP is the client to use; nil means http.DefaultClient.
	HTTP *http.Client
}

// SendOptions describes a fax to send.
type SendOptions struct {
	// To are the recipients' numbers.
	To []string
	// File is the document (a PDF).
	File []byte
	// CallbackURL, if set, is sent as callback_url.
	CallbackURL string
	// CallbackAfterFile puts callback_url after the file part.
	CallbackAfterFile bool
	// Tags are sent as tag[name]=value.
	Tags map[string]string
}

func (c *Client) do(req *http.Request) (map[string]any, error) {
	if c.Bearer != "" {
		req.Header.Set("Authorization", "Bearer "+c.Bearer)
	} else {
		req.SetBasicAuth(c.Key, c.Secret)
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil && closedBeforeAnswer(err) && req.GetBody != nil {
		// A connection that a server closed before answering, as one Caddy's old config
		// accepted just before a reload shut it down: no handler saw the request, so it is sent
		// again, once, on a new connection.
		if body, berr := req.GetBody(); berr == nil {
			req.Body = body
			time.Sleep(50 * time.Millisecond)
			resp, err = hc.Do(req)
		}
	}
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	var env map[string]any
	if err := json.Unmarshal(b, &env); err != nil {
		return nil, fmt.Errorf("%s %s: %s: not JSON: %.200s", req.Method, req.URL.Path, resp.Status, b)
	}
	if resp.StatusCode != 200 || env["success"] != true {
		return env, fmt.Errorf("%s %s: %s: %v", req.Method, req.URL.Path, resp.Status, env["message"])
	}
	return env, nil
}

// closedBeforeAnswer reports whether err is a connection closed (EOF, reset) before any answer.
func closedBeforeAnswer(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET)
}

// post POSTs body (of contentType) to path under Base and returns the answer's data object and
// the whole envelope.
func (c *Client) post(ctx context.Context, path, contentType string, body io.Reader) (data, env map[string]any, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.Base+path, body)
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("Content-Type", contentType)
	if env, err = c.do(req); err != nil {
		return nil, env, err
	}
	data, _ = env["data"].(map[string]any)
	return data, env, nil
}

// postForm POSTs form urlencoded to path under Base, as post does.
func (c *Client) postForm(ctx context.Context, path string, form url.Values) (data, env map[string]any, err error) {
	return c.post(ctx, path, "application/x-www-form-urlencoded", strings.NewReader(form.Encode()))
}

// Send sends a fax as multipart/form-data and returns its id.
func (c *Client) Send(ctx context.Context, o SendOptions) (int64, error) {
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	for _, to := range o.To {
		mw.WriteField("to[]", to)
	}
	if o.CallbackURL != "" && !o.CallbackAfterFile {
		mw.WriteField("callback_url", o.CallbackURL)
	}
	for k, v := range o.Tags {
		mw.WriteField("tag["+k+"]", v)
	}
	fw, _ := mw.CreateFormFile("file", "document.pdf")
	fw.Write(o.File)
	if o.CallbackURL != "" && o.CallbackAfterFile {
		mw.WriteField("callback_url", o.CallbackURL)
	}
	mw.Close()
	data, env, err := c.post(ctx, "/faxes", mw.FormDataContentType(), &body)
	if err != nil {
		return 0, err
	}
	id, _ := data["id"].(float64)
	if id == 0 {
		return 0, fmt.Errorf("send response has no data.id: %v", env)
	}
	return int64(id), nil
}

// Status returns a fax's status.
func (c *Client) Status(ctx context.Context, id int64) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s/faxes/%d", c.Base, id), nil)
	if err != nil {
		return "", err
	}
	env, err := c.do(req)
	if err != nil {
		return "", err
	}
	data, _ := env["data"].(map[string]any)
	s, _ := data["status"].(string)
	return s, nil
}

// WaitDone polls a fax through the API every interval until its status is final and returns it.
func (c *Client) WaitDone(ctx context.Context, id int64, interval time.Duration) (string, error) {
	for {
		s, err := c.Status(ctx, id)
		if err != nil {
			return "", err
		}
		switch s {
		case "success", "failure", "partialsuccess":
			return s, nil
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("fax %d still %q: %w", id, s, ctx.Err())
		case <-time.After(interval):
		}
	}
}

// TestReceive simulates an incoming fax (POST /faxes with direction=received, test credentials)
// and returns the id the simulated service reports (0 if the service, like Phaxio, reports none).
func (c *Client) TestReceive(ctx context.Context, file []byte, from, to string) (int64, error) {
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	mw.WriteField("direction", "received")
	if from != "" {
		mw.WriteField("from_number", from)
	}
	if to != "" {
		mw.WriteField("to_number", to)
	}
	fw, _ := mw.CreateFormFile("file", "received.pdf")
	fw.Write(file)
	mw.Close()
	data, _, err := c.post(ctx, "/faxes", mw.FormDataContentType(), &body)
	if err != nil {
		return 0, err
	}
	id, _ := data["id"].(float64)
	return int64(id), nil
}

// ProvisionNumber provisions a phone number (POST /phone_numbers) with a webhook URL and returns
// the number.
func (c *Client) ProvisionNumber(ctx context.Context, areaCode, callbackURL string) (string, error) {
	form := url.Values{"country_code": {"1"}, "area_code": {areaCode}}
	if callbackURL != "" {
		form.Set("callback_url", callbackURL)
	}
	data, env, err := c.postForm(ctx, "/phone_numbers", form)
	if err != nil {
		return "", err
	}
	n, _ := data["phone_number"].(string)
	if n == "" {
		return "", fmt.Errorf("provisioning response has no phone_number: %v", env)
	}
	return n, nil
}

// Resend resends a fax (POST /faxes/{id}/resend), with callbackURL as its callback_url when set,
// and returns the new fax's id.
func (c *Client) Resend(ctx context.Context, id int64, callbackURL string) (int64, error) {
	form := url.Values{}
	if callbackURL != "" {
		form.Set("callback_url", callbackURL)
	}
	data, env, err := c.postForm(ctx, fmt.Sprintf("/faxes/%d/resend", id), form)
	if err != nil {
		return 0, err
	}
	newID, _ := data["id"].(float64)
	if newID == 0 {
		return 0, fmt.Errorf("resend response has no data.id: %v", env)
	}
	return int64(newID), nil
}

// ForEach calls fn(i) for every i in [0, n) from concurrency goroutines, and returns the first
// error: of fn, which stops the feeding of further indices, or of ctx.
func ForEach(ctx context.Context, n, concurrency int, fn func(i int) error) error {
	work := make(chan int)
	errs := make(chan error, concurrency)
	var wg sync.WaitGroup
	for range concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				if err := fn(i); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	var err error
feed:
	for i := range n {
		select {
		case work <- i:
		case err = <-errs:
			break feed
		case <-ctx.Done():
			err = ctx.Err()
			break feed
		}
	}
	close(work)
	wg.Wait()
	close(errs)
	return cmp.Or(err, <-errs)
}
