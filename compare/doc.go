// Package compare holds recon's pure data logic: the values a decoder hands over,
// their normalization (rename, ignore, types), the canonical key, the keyed row
// digest, versions, and the classification of a (key, target) pair.
//
// It does no I/O, reads no clock and starts no goroutines: callers pass `now`.
package compare
