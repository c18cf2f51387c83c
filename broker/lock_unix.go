//go:build unix

package broker

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// lockName sits next to kfake's files; kfake only reads the files it wrote,
// so it ignores this one. Kafka guards its log dirs the same way.
const lockName = ".lock"

// lockDir takes an exclusive flock on dir. The kernel drops it when the
// process dies, so a crashed broker never leaves a stale lock behind.
func lockDir(dir string) (unlock func() error, err error) {
	f, err := os.OpenFile(filepath.Join(dir, lockName), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock data dir: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		_ = f.Close() // the lock error is the one to report
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w: %s", ErrDataDirInUse, dir)
		}
		return nil, fmt.Errorf("lock data dir %s: %w", dir, err)
	}
	return f.Close, nil
}
