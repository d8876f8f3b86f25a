package pgtest

import "syscall"

// sysProcAttr runs the server as cr and has the kernel send it SIGQUIT (immediate shutdown)
// when this process dies. Go sends Pdeathsig when the thread that started the child exits;
// the runtime keeps its threads for the process's lifetime, so in practice that is the process.
func sysProcAttr(cr *syscall.Credential) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Credential: cr, Pdeathsig: syscall.SIGQUIT}
}
