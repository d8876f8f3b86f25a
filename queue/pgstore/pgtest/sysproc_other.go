//go:build unix && !linux

package pgtest

import "syscall"

// sysProcAttr runs the server as cr; without Pdeathsig, the watchdog alone stops a server
// whose test binary died.
func sysProcAttr(cr *syscall.Credential) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Credential: cr}
}
