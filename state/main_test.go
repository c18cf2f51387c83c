package state

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the run if a test leaves goroutines behind: every Store a
// test opens must be closed, and Close must stop all of Badger's.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
