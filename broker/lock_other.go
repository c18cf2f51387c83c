//go:build !unix

package broker

// lockDir does not guard the data dir where flock does not exist: running two
// brokers on one dir is then the operator's mistake to avoid.
func lockDir(string) (unlock func() error, err error) {
	return func() error { return nil }, nil
}
