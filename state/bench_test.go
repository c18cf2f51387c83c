package state

import (
	"fmt"
	"testing"
)

// BenchmarkKeyStateRoundTrip is the codec's cost per CDC event: encode and
// decode a typical state (source head with 10 columns, 8 history entries, 1
// target), with the encoder reused as a Batch reuses it.
func BenchmarkKeyStateRoundTrip(b *testing.B) {
	ks := typicalKeyState()
	var e encoder
	b.ReportAllocs()
	for b.Loop() {
		e.buf = e.buf[:0]
		e.keyState(ks)
		if _, err := decodeKeyState(e.buf); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(e.buf)), "bytes/state")
}

// BenchmarkCommit is one poll's write: 1000 key states (half new, half
// overwritten) and the offsets of 4 partitions, in one synced transaction.
func BenchmarkCommit(b *testing.B) {
	s := openTest(b, b.TempDir())
	ks := typicalKeyState()
	keys := make([]string, 2000)
	for i := range keys {
		keys[i] = fmt.Sprintf("%08d", i)
	}
	batch := s.NewBatch()
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		batch.Reset()
		for j := range 1000 {
			batch.PutKeyState("orders", keys[(n*500+j)%len(keys)], ks)
		}
		for p := range int32(4) {
			batch.SetOffset("pg.public.orders", p, int64(n))
		}
		if err := s.Commit(batch); err != nil {
			b.Fatal(err)
		}
		n++
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*1000), "ns/keystate")
}
