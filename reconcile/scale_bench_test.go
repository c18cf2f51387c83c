package reconcile

import (
	"context"
	"flag"
	"io/fs"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/recon-dev/recon/compare"
	"github.com/recon-dev/recon/internal/procstat"
	"github.com/recon-dev/recon/repair"
	"github.com/recon-dev/recon/state"
)

var benchKeys = flag.Int("keys", 1_000_000, "keys BenchmarkStateOnDisk folds (make bench-keys: 10000000)")

// BenchmarkStateOnDisk shows that memory does not grow with the number of
// keys: key states live in Badger, and the engine keeps at most CacheKeys of
// them decoded. It folds a source change and the target's matching copy
// for each of -keys keys through the engine into a real Badger dir, the
// way the consumer hands them over (batches of 2000 records, checkpoints
// every 250ms), then reports:
//
//	rss_peak_MB       the process's peak resident set (VmHWM): with the
//	                  pages of the files Badger maps, which the kernel
//	                  reclaims at will, so it follows the state dir's size
//	anon_peak_MB      the highest anonymous resident memory (no file
//	                  pages), sampled every 100ms: memory proper
//	rss_anon_MB       anonymous resident memory at the end
//	heap_bytes/key    Go heap live after a GC at the end, per key
//	disk_bytes/key    the state dir's size once closed, per key
//	keys/s            folding rate, for orientation only
//
// Run it once, e.g. go test -run '^$' -bench StateOnDisk -benchtime 1x
// ./reconcile -keys 10000000 (make bench-keys).
func BenchmarkStateOnDisk(b *testing.B) {
	for b.Loop() {
		stateOnDisk(b, *benchKeys)
	}
}

func stateOnDisk(b *testing.B, keys int) {
	dir := b.TempDir()
	st, err := state.Open(dir, state.Options{})
	if err != nil {
		b.Fatal(err)
	}
	rules, err := compare.NewRules([]string{"id"}, nil, nil, map[string]string{"amount": "decimal(2)"}, 0)
	if err != nil {
		b.Fatal(err)
	}
	hasher := compare.NewHasher([]byte("0123456789abcdef"))
	e, err := New(st, Options{
		Datasets: []Dataset{{
			Name: "orders", Window: 30 * time.Second, PayloadFull: true,
			Source:  System{Name: "pg", Topic: "src"},
			Targets: []System{{Name: "wh", Topic: "tgt"}},
		}},
		Outputs:  Outputs{Divergences: "div", Repairs: "rep", DLQ: "dlq"},
		Hasher:   hasher,
		Planner:  repair.NewPlanner(map[string]repair.Policy{"orders": {Mode: "auto", AutoKinds: []string{"missing"}}}),
		Progress: &caughtUp{ok: true},
	})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	const perBatch = 1000 // keys; two records each
	items := make([]Item, 0, 2*perBatch)
	var srcOff, tgtOff int64
	stopSampling := sampleAnon()
	started := time.Now()
	at := started.UTC()
	for base := 0; base < keys; base += perBatch {
		items = items[:0]
		n := min(perBatch, keys-base)
		for i := range n {
			ev, tev := benchEvents(b, rules, hasher, int64(base+i), at)
			items = append(items, Item{Topic: "src", Offset: srcOff, Event: ev})
			srcOff++
			items = append(items, Item{Topic: "tgt", Offset: tgtOff, Event: tev})
			tgtOff++
		}
		if err := e.Apply(ctx, items); err != nil {
			b.Fatal(err)
		}
	}
	if err := e.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	elapsed := time.Since(started)
	stored, _, _ := st.Stats()
	if stored != int64(keys) {
		b.Fatalf("%d key states stored, want %d", stored, keys)
	}
	if ks, err := st.KeyState("orders", strconv.Itoa(keys-1)); err != nil || ks == nil || ks.Targets["wh"] == nil {
		b.Fatalf("the last key's state is not in the store: %v, %v", ks, err)
	}
	cached := len(e.cache)

	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	anonPeak := stopSampling()
	peak, _ := procstat.Bytes(procstat.PeakRSS)
	anon, _ := procstat.Bytes(procstat.AnonRSS)
	runtime.KeepAlive(e) // its cache counts in the heap measured
	if err := st.Close(); err != nil {
		b.Fatal(err)
	}
	disk := dirSize(b, dir)

	b.ReportMetric(float64(peak)/(1<<20), "rss_peak_MB")
	b.ReportMetric(float64(anon)/(1<<20), "rss_anon_MB")
	b.ReportMetric(float64(anonPeak)/(1<<20), "anon_peak_MB")
	b.ReportMetric(float64(ms.HeapAlloc)/float64(keys), "heap_bytes/key")
	b.ReportMetric(float64(disk)/float64(keys), "disk_bytes/key")
	b.ReportMetric(float64(keys)/elapsed.Seconds(), "keys/s")
	b.Logf("%d keys in %s: peak RSS %d MiB (file pages included), anonymous RSS peak %d MiB, %d MiB at the end, heap %d MiB live, %d key states cached, state dir %d MiB",
		keys, elapsed.Round(time.Second), peak>>20, anonPeak>>20, anon>>20, ms.HeapAlloc>>20, cached, disk>>20)
}

// benchEvents are a source insert of key id and the target's matching copy,
// as the decoding stage hands them over: rows normalized, hashed and
// digested; the target's row only on demand.
func benchEvents(b *testing.B, rules *compare.Rules, h *compare.Hasher, id int64, at time.Time) (src, tgt *compare.ChangeEvent) {
	raw := map[string]any{"id": id, "amount": strconv.FormatInt(id%100000, 10) + ".25", "status": "shipped",
		"customer": "customer-" + strconv.FormatInt(id%9973, 10), "currency": "EUR", "items": id % 7}
	key, err := rules.Key(raw)
	if err != nil {
		b.Fatal(err)
	}
	row, _, err := rules.Normalize(raw)
	if err != nil {
		b.Fatal(err)
	}
	cols := h.Columns(row)
	d := h.Digest(cols)
	src = &compare.ChangeEvent{Dataset: "orders", System: "pg", Topic: "src", Key: key, Op: compare.OpUpsert,
		Version: compare.Version{A: uint64(id) + 1}, Row: row, Cols: cols, Digest: d, EventTime: at}
	tgt = &compare.ChangeEvent{Dataset: "orders", System: "wh", Topic: "tgt", Key: key, Op: compare.OpUpsert,
		Version: compare.Version{A: uint64(id) + 1}, Cols: cols, Digest: d, EventTime: at,
		LazyRow: func() (compare.Row, error) { return row, nil }}
	return src, tgt
}

// sampleAnon samples RssAnon every 100ms until stop, which returns the
// highest sample: /proc keeps a peak of the whole resident set only.
func sampleAnon() (stop func() int64) {
	var most int64
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			if n, ok := procstat.Bytes(procstat.AnonRSS); ok {
				most = max(most, n)
			}
			select {
			case <-quit:
				return
			case <-t.C:
			}
		}
	}()
	return func() int64 {
		close(quit)
		<-done
		return most
	}
}

func dirSize(b *testing.B, dir string) int64 {
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err == nil {
			n += info.Size()
		}
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
	return n
}

// The decoded-state cache stays near CacheKeys while checkpoints are in
// flight (under load one almost always is), and evicting never loses a
// change: every key folded twice ends with its second version in the store.
func TestCacheStaysBounded(t *testing.T) {
	st, err := state.Open(t.TempDir(), state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	rules, err := compare.NewRules([]string{"id"}, nil, nil, map[string]string{"amount": "decimal(2)"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	hasher := compare.NewHasher([]byte("0123456789abcdef"))
	const cacheKeys, keys, batch = 200, 3000, 50
	e, err := New(st, Options{
		Datasets: []Dataset{{Name: "orders", Window: 30 * time.Second, PayloadFull: true,
			Source: System{Name: "pg", Topic: "src"}, Targets: []System{{Name: "wh", Topic: "tgt"}}}},
		Outputs:  Outputs{Divergences: "div", Repairs: "rep", DLQ: "dlq"},
		Hasher:   hasher,
		Planner:  repair.NewPlanner(map[string]repair.Policy{"orders": {Mode: "auto"}}),
		Progress: &caughtUp{ok: true},
		// A checkpoint at every Apply, not waited for: the next Apply
		// folds while it is written.
		CheckpointEvery: -1,
		CacheKeys:       cacheKeys,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var off int64
	most := 0
	for pass := uint64(1); pass <= 2; pass++ {
		for base := 0; base < keys; base += batch {
			var items []Item
			for id := base; id < base+batch; id++ {
				raw := map[string]any{"id": id, "amount": "1.00", "status": "v" + strconv.FormatUint(pass, 10)}
				key, _ := rules.Key(raw)
				row, _, err := rules.Normalize(raw)
				if err != nil {
					t.Fatal(err)
				}
				cols := hasher.Columns(row)
				items = append(items, Item{Topic: "src", Offset: off, Event: &compare.ChangeEvent{Dataset: "orders", System: "pg",
					Key: key, Op: compare.OpUpsert, Version: compare.Version{A: pass}, Row: row, Cols: cols,
					Digest: hasher.Digest(cols), EventTime: time.Now()}})
				off++
			}
			if err := e.Apply(ctx, items); err != nil {
				t.Fatal(err)
			}
			most = max(most, len(e.cache))
		}
	}
	if err := e.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	// Past the bound only by what is not durable yet: the batch just
	// folded and the one being written.
	if most > cacheKeys+2*batch {
		t.Fatalf("the cache held %d key states, bound %d (+%d not yet durable)", most, cacheKeys, 2*batch)
	}
	for id := range keys {
		ks, err := st.KeyState("orders", strconv.Itoa(id))
		if err != nil || ks == nil || ks.Source == nil {
			t.Fatalf("key %d: %v %v", id, ks, err)
		}
		if ks.Source.Version.A != 2 {
			t.Fatalf("key %d: stored source version %d, want 2: an evicted state lost its change", id, ks.Source.Version.A)
		}
	}
}
