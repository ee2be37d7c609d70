package repogen

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// swapDir puts the complete directory tmp at final. When final exists the
// two are exchanged with one renameat2(RENAME_EXCHANGE), so there is no
// instant at which final is missing (fsutil.PublishDir has one); the old
// tree, now at tmp, is then removed. Where the kernel or file system lacks
// the exchange, PublishDir's rename-aside is the fallback.
func swapDir(tmp, final string) error {
	if _, err := os.Lstat(final); errors.Is(err, os.ErrNotExist) {
		return os.Rename(tmp, final)
	}
	err := unix.Renameat2(unix.AT_FDCWD, tmp, unix.AT_FDCWD, final, unix.RENAME_EXCHANGE)
	if err == nil {
		return os.RemoveAll(tmp)
	}
	if !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOSYS) && !errors.Is(err, unix.ENOTSUP) {
		return &os.LinkError{Op: "renameat2 exchange", Old: tmp, New: final, Err: err}
	}
	return publishDir(tmp, final)
}
