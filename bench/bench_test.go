package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"runtime/pprof"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/recon-dev/recon/broker"
)

// TestMain fails the run if a pass leaves a client, the pipeline or Badger
// running.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// TestRun checks that a small run measures both passes, that recon folded in
// every record of the matching workload without a verdict, and that the
// report ends with the ratio. It asserts no timing.
func TestRun(t *testing.T) {
	var out bytes.Buffer
	res, err := Run(t.Context(), Options{Records: 2000, Keys: 300, Partitions: 2, Dir: t.TempDir(), Out: &out})
	if err != nil {
		t.Fatal(err)
	}
	if res.SourceRecords != 1000 || res.TargetRecords != 1000 {
		t.Errorf("produced %d source and %d target records, want 1000 each", res.SourceRecords, res.TargetRecords)
	}
	if res.Raw.Records != 2000 || res.Full.Records != 2000 {
		t.Errorf("passes read %d (raw) and %d (full) records, want 2000", res.Raw.Records, res.Full.Records)
	}
	if res.Raw.Rate() <= 0 || res.Full.Rate() <= 0 {
		t.Errorf("rates raw %v, full %v: want both > 0", res.Raw.Rate(), res.Full.Rate())
	}
	if r := res.Ratio(); r <= 0 || r >= 2 {
		t.Errorf("ratio %v: want it in (0, 2)", r)
	}
	c := res.Recon
	// Every record is a new version of its key: nothing is a duplicate.
	if c.Events != 2000 || c.Ignored != 0 || c.Rejected != 0 {
		t.Errorf("recon folded %d events, ignored %d, rejected %d; want 2000, 0, 0", c.Events, c.Ignored, c.Rejected)
	}
	if c.StateKeys != 300 {
		t.Errorf("state keys %d, want 300", c.StateKeys)
	}
	if c.DivergencesOpened != 0 {
		t.Errorf("%d divergences opened on a matching workload", c.DivergencesOpened)
	}
	if c.Batches == 0 {
		t.Error("no synced batch was measured")
	}
	if b := res.BytesPerRecord(); b < 500 || b > 700 {
		t.Errorf("%.0f bytes per record, want about 600", b)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if last := lines[len(lines)-1]; !strings.HasPrefix(last, "ratio: 0.") && !strings.HasPrefix(last, "ratio: 1.") {
		t.Errorf("last line %q, want ratio: N.NNN", last)
	}
}

func TestOptionsRejected(t *testing.T) {
	for _, o := range []Options{{Records: 1}, {Keys: -1}, {Partitions: -2}} {
		if _, err := Run(t.Context(), o); err == nil {
			t.Errorf("Run(%+v) = nil error", o)
		}
	}
}

// TestWorkloadShape checks the generated records: valid JSON, 10 columns,
// about 600 bytes, and the replica's row equal to the source's.
func TestWorkloadShape(t *testing.T) {
	g := gen{base: time.Date(2024, 6, 15, 12, 30, 0, 0, time.UTC)}
	at := g.base.Add(time.Minute)
	for _, version := range []int64{1, 2, 17} {
		src := g.appendValue(nil, "pg", 24_023_040, 12_345, version, at)
		tgt := g.appendValue(nil, "replica", 24_000_000, 12_345, version, at.Add(5*time.Millisecond))
		var s, r struct {
			After  map[string]any `json:"after"`
			Op     string         `json:"op"`
			Source struct {
				LSN int64 `json:"lsn"`
			} `json:"source"`
		}
		if err := json.Unmarshal(src, &s); err != nil {
			t.Fatalf("source value %s: %v", src, err)
		}
		if err := json.Unmarshal(tgt, &r); err != nil {
			t.Fatalf("target value %s: %v", tgt, err)
		}
		if len(s.After) != 10 {
			t.Errorf("%d columns, want 10: %s", len(s.After), src)
		}
		if n := len(src); n < 550 || n > 680 {
			t.Errorf("value of %d bytes, want about 600", n)
		}
		if string(mustJSON(t, s.After)) != string(mustJSON(t, r.After)) {
			t.Errorf("replica row %v differs from source row %v", r.After, s.After)
		}
		if want := map[bool]string{true: "c", false: "u"}[version == 1]; s.Op != want {
			t.Errorf("version %d: op %q, want %q", version, s.Op, want)
		}
		if s.Source.LSN != 24_023_040 {
			t.Errorf("lsn %d, want 24023040", s.Source.LSN)
		}
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// BenchmarkPipeline runs what `recon bench` runs, with its defaults, per
// iteration (broker, workload, both passes) and reports the last one.
//
//	go test -run '^$' -bench Pipeline -benchtime 1x ./bench
func BenchmarkPipeline(b *testing.B) {
	var res Result
	for b.Loop() {
		var err error
		res, err = Run(b.Context(), Options{Dir: b.TempDir()})
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(res.Raw.Rate(), "raw-records/s")
	b.ReportMetric(res.Full.Rate(), "full-records/s")
	b.ReportMetric(res.Ratio(), "ratio")
}

// BenchmarkFull produces the default workload once and then times recon's
// pass alone, each iteration with a fresh state dir: the one to profile.
//
//	go test -run '^$' -bench Full -benchtime 2x -cpuprofile cpu.out ./bench
//	go tool pprof -tagfocus pass=full -top bench.test cpu.out
func BenchmarkFull(b *testing.B) {
	opts := Options{}
	if err := opts.defaults(); err != nil {
		b.Fatal(err)
	}
	ctx := b.Context()
	br, err := broker.Start(broker.Options{Partitions: opts.Partitions, Topics: []string{SourceTopic, TargetTopic}})
	if err != nil {
		b.Fatal(err)
	}
	defer br.Close()
	w, err := produce(ctx, br.Addr(), opts.Records, opts.Keys)
	if err != nil {
		b.Fatal(err)
	}
	var (
		total Pass
		n     int
	)
	for b.Loop() {
		// A new group per pass, so that each reads the topics from the start.
		n++
		group := fmt.Sprintf("recon-bench-%d", n)
		var (
			p   Pass
			err error
		)
		// The label marks recon's goroutines (and Badger's, which it starts)
		// in a CPU profile: `go tool pprof -tagfocus pass=full`. The broker's
		// and the runtime's own goroutines stay unlabelled.
		pprof.Do(ctx, pprof.Labels("pass", "full"), func(ctx context.Context) {
			o := opts
			o.Dir = b.TempDir()
			p, _, err = fullPass(ctx, br.Addr(), w, group, o)
		})
		if err != nil {
			b.Fatal(err)
		}
		total.Records += p.Records
		total.Elapsed += p.Elapsed
	}
	b.ReportMetric(total.Rate(), "records/s")
	b.ReportMetric(float64(w.bytes)/float64(w.records()), "bytes/record")
}
