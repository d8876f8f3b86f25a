//go:build linux

// Package spacetest gives tests a small file system to fill: a tmpfs mounted for one test, and a
// filler file that leaves a chosen amount of free space. Mounting needs root; without it the
// test is skipped with a message saying so.
package spacetest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// Tmpfs mounts a tmpfs of size bytes for the test and returns its directory. It is unmounted
// when the test ends (lazily if something still holds it); cleanups run last-registered first,
// so register what uses the mount (a Caddy process, an open store) after calling Tmpfs.
func Tmpfs(t testing.TB, size int64) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "fs")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%d", size), "tmpfs", dir).CombinedOutput()
	if err != nil {
		t.Skipf("cannot mount a tmpfs, which this test needs (run it as root): %v: %s", err, strings.TrimSpace(string(out)))
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			exec.Command("umount", "-l", dir).Run()
			t.Logf("unmounting %s: %v: %s (unmounted lazily)", dir, err, out)
		}
	})
	return dir
}

// Free returns the bytes available to unprivileged writers in dir's file system.
func Free(t testing.TB, dir string) int64 {
	t.Helper()
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatalf("reading the free space of %s: %v", dir, err)
	}
	return int64(st.Bavail) * int64(st.Bsize)
}

// Fill writes the file name into dir, leaving about keep bytes of its file system free, and
// returns its path.
func Fill(t testing.TB, dir string, keep int64, name string) string {
	t.Helper()
	size := Free(t, dir) - keep
	if size <= 0 {
		t.Fatalf("only %d bytes free in %s, want more than %d", size+keep, dir, keep)
	}
	path := filepath.Join(dir, name)
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1<<20)
	for i := range buf {
		buf[i] = byte(i) // tmpfs stores zero pages too; any content does
	}
	for size > 0 {
		n := min(size, int64(len(buf)))
		if _, err := f.Write(buf[:n]); err != nil {
			t.Fatalf("writing the filler: %v", err)
		}
		size -= n
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}
