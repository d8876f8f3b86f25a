package queue

import (
	"os"
	"syscall"
)

// datasync flushes f's data, and the metadata needed to read it back, to disk: fdatasync, as
// Badger's msync of a log does. A full fsync would also commit the modification time, which
// every write through a log's memory mapping changes, at the cost of a journal commit each time.
func datasync(f *os.File) error {
	for {
		err := syscall.Fdatasync(int(f.Fd()))
		if err != syscall.EINTR {
			if err != nil {
				return &os.PathError{Op: "fdatasync", Path: f.Name(), Err: err}
			}
			return nil
		}
	}
}
