package main

import (
	"os"
	"syscall"
)

// inodeOf is the file's inode number (0 when the platform does not say).
func inodeOf(st os.FileInfo) uint64 {
	if s, ok := st.Sys().(*syscall.Stat_t); ok {
		return s.Ino
	}
	return 0
}
