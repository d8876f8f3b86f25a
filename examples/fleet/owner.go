package fleet

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

// Which instance sent a webhook is not in the request: faxhook's event ids are the same in every
// instance, and all instances share the webhook URLs. The receiver finds out from the connection
// itself: on Linux, the client end of a loopback connection is a socket in /proc/net/tcp, and
// the process holding it has that socket among its file descriptors. The lookup runs once per
// connection, when it is accepted, while the sending process is surely alive.

// ownerKey is the context key of a connection's owning instance name.
type ownerKey struct{}

// serveAttributed runs h on a loopback port, like harness.Serve, and puts the name of the
// instance whose process opened each connection into the requests' context (see ownerOf); pids
// returns the running instances by pid. It returns the base URL and a function that stops the
// server.
func serveAttributed(h http.Handler, pids func() map[int]string) (string, func(), error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, fmt.Errorf("listening on loopback: %w", err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second,
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			return context.WithValue(ctx, ownerKey{}, connOwner(c, pids()))
		}}
	go srv.Serve(l)
	return "http://" + l.Addr().String(), func() { srv.Close() }, nil
}

// ownerOf returns the instance that sent r, or "" when it is not known.
func ownerOf(r *http.Request) string {
	s, _ := r.Context().Value(ownerKey{}).(string)
	return s
}

// connOwner finds which of the processes in pids holds the client end of the accepted loopback
// connection c, and returns its name ("" when none does, or off Linux).
func connOwner(c net.Conn, pids map[int]string) string {
	remote, ok1 := c.RemoteAddr().(*net.TCPAddr)
	local, ok2 := c.LocalAddr().(*net.TCPAddr)
	if !ok1 || !ok2 || len(pids) == 0 {
		return ""
	}
	inode := socketInode(remote.Port, local.Port)
	if inode == "" {
		return ""
	}
	want := "socket:[" + inode + "]"
	for pid, name := range pids {
		dir := "/proc/" + strconv.Itoa(pid) + "/fd"
		fds, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, fd := range fds {
			if l, err := os.Readlink(dir + "/" + fd.Name()); err == nil && l == want {
				return name
			}
		}
	}
	return ""
}

// socketInode returns the inode of the IPv4 TCP socket whose local port is from and remote port
// is to, from /proc/net/tcp, or "".
func socketInode(from, to int) string {
	f, err := os.Open("/proc/net/tcp")
	if err != nil {
		return ""
	}
	defer f.Close()
	suffixFrom, suffixTo := fmt.Sprintf(":%04X", from), fmt.Sprintf(":%04X", to)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode
		fs := strings.Fields(sc.Text())
		if len(fs) > 9 && strings.HasSuffix(fs[1], suffixFrom) && strings.HasSuffix(fs[2], suffixTo) {
			return fs[9]
		}
	}
	return ""
}
