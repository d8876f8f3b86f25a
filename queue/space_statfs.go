//go:build linux || darwin || freebsd

package queue

import (
	"fmt"
	"syscall"
)

// freeSpace returns the bytes available to an unprivileged process on dir's file system.
func freeSpace(dir string) (int64, error) {
	var s syscall.Statfs_t
	if err := syscall.Statfs(dir, &s); err != nil {
		return 0, fmt.Errorf("reading the free space of %s: %w", dir, err)
	}
	return int64(s.Bavail) * int64(s.Bsize), nil
}
