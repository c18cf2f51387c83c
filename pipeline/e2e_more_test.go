package pipeline

import (
	"fmt"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
)

// metricValue sums the samples of a metric family whose labels include want.
func metricValue(t *testing.T, p *Pipeline, name string, want map[string]string) float64 {
	t.Helper()
	mfs, err := p.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if !hasLabels(m, want) {
				continue
			}
			switch {
			case m.Gauge != nil:
				sum += m.Gauge.GetValue()
			case m.Counter != nil:
				sum += m.Counter.GetValue()
			}
		}
	}
	return sum
}

func hasLabels(m *dto.Metric, want map[string]string) bool {
	n := 0
	for _, l := range m.GetLabel() {
		if v, ok := want[l.GetName()]; ok && v == l.GetValue() {
			n++
		}
	}
	return n == len(want)
}

func inSync(p *Pipeline, key string) func() bool {
	return func() bool {
		ks, err := p.Store().KeyState("orders", key)
		if err != nil || ks == nil || ks.Source == nil {
			return false
		}
		ts := ks.Targets["warehouse"]
		return ts != nil && ts.Head != nil && ts.Deadline.IsZero() && ts.Open == nil
	}
}

// While recon's own reading of the target is paused, an expired window must
// wait: the target may hold the row already, recon just has not read it.
func TestNoVerdictWhileTargetReadingIsPaused(t *testing.T) {
	h := newHarness(t, time.Second, "auto")
	p, _ := h.start()
	r := row{ID: 1, Amount: "10.00", Status: "new", Created: created}

	p.consumer.Client().PauseFetchTopics(tgtTopic)
	h.source("c", 100, r)
	h.target("c", 1, 100, r) // replicated at once, but recon cannot see it
	waitFor(t, 10*time.Second, "the window to expire and be held back", func() bool {
		return metricValue(t, p, "recon_windows_waiting_watermark", nil) >= 1
	})
	if n := len(h.outputs(h.cfg.Outputs.Divergences)); n != 0 {
		t.Fatalf("%d divergences while the target's reading was paused", n)
	}
	p.consumer.Client().ResumeFetchTopics(tgtTopic)
	waitFor(t, 10*time.Second, "key 1 in sync", inSync(p, "1"))

	h.source("c", 9900, row{ID: 99, Amount: "1.00", Status: "new", Created: created})
	divs := h.waitOutputs(h.cfg.Outputs.Divergences, 1)
	if len(divs) != 1 || divs[0].Key != "orders/warehouse/99" {
		t.Fatalf("divergences %v, want only the marker's", kindsOf(divs))
	}
}

// Undecodable records go to the DLQ with their reason and origin; the
// partition keeps flowing and the good records around them are judged.
func TestBadRecordsGoToDLQAndPartitionFlows(t *testing.T) {
	h := newHarness(t, 500*time.Millisecond, "auto")
	p, _ := h.start()
	good := row{ID: 7, Amount: "7.00", Status: "new", Created: created}
	h.produce(srcTopic, `{"id":1}`, `{"before":null,"after":{"id":1},"op":"c"`) // truncated JSON
	h.source("c", 700, good)
	h.produce(srcTopic, `{"id":2}`, `{"before":null,"after":{"id":2},"source":{"lsn":5},"op":"x"}`)  // unknown op
	h.produce(srcTopic, ``, `{"before":null,"after":{"amount":"AQ=="},"source":{"lsn":6},"op":"c"}`) // no key anywhere
	h.target("c", 1, 700, good)
	h.source("c", 9900, row{ID: 99, Amount: "1.00", Status: "new", Created: created})

	dlq := h.waitOutputs(h.cfg.Outputs.DLQ, 3)
	for _, d := range dlq {
		if d.Headers["recon-source-topic"] != srcTopic || d.Headers["recon-source-partition"] != "0" || d.Headers["recon-error"] == "" {
			t.Errorf("DLQ headers %v", d.Headers)
		}
	}
	if len(dlq) != 3 {
		t.Fatalf("%d DLQ records, want 3", len(dlq))
	}
	offsets := map[string]bool{}
	for _, d := range dlq {
		offsets[d.Headers["recon-source-offset"]] = true
	}
	for _, o := range []string{"0", "2", "3"} {
		if !offsets[o] {
			t.Errorf("no DLQ record for source offset %s: %v", o, offsets)
		}
	}
	if dlq[0].Body["raw"] != `{"before":null,"after":{"id":1},"op":"c"` || dlq[0].Key != `{"id":1}` {
		t.Errorf("DLQ record must carry the original key and value: %q %q", dlq[0].Key, dlq[0].Body["raw"])
	}
	waitFor(t, 10*time.Second, "good key 7 in sync", inSync(p, "7"))
	divs := h.waitOutputs(h.cfg.Outputs.Divergences, 1)
	if len(divs) != 1 || divs[0].Key != "orders/warehouse/99" {
		t.Fatalf("divergences %v, want only the marker's", kindsOf(divs))
	}
	for _, reason := range []string{"malformed", "unknown_op", "missing_key"} {
		if v := metricValue(t, p, "recon_decode_errors_total", map[string]string{"reason": reason}); v != 1 {
			t.Errorf("recon_decode_errors_total{reason=%q} = %v, want 1", reason, v)
		}
	}
	if v := metricValue(t, p, "recon_dlq_records_total", nil); v != 3 {
		t.Errorf("recon_dlq_records_total = %v, want 3", v)
	}
}

// A restart in the middle of a stream resumes from the offsets stored with
// the state: every verdict comes out once, none is lost or repeated.
func TestRestartMidStreamLosesAndDuplicatesNothing(t *testing.T) {
	h := newHarness(t, 500*time.Millisecond, "auto")
	off := 0.0 // a third of the keys go missing on purpose: no storm guard
	h.cfg.Datasets[0].Repair.MaxDivergentRatio = &off
	const n = 60
	r := func(id int64, status string) row {
		return row{ID: id, Amount: fmt.Sprintf("%d.25", id), Status: status, Created: created}
	}
	// Every third key goes missing on the target; the rest replicate.
	produceRange := func(from, to int64) {
		for id := from; id < to; id++ {
			h.source("c", id*10, r(id, "new"))
			if id%3 != 0 {
				h.target("c", id, id*10, r(id, "new"))
			}
		}
	}
	produceRange(1, n/2)
	p, stop := h.start()
	waitFor(t, 10*time.Second, "some progress", func() bool {
		offs, err := p.Store().Offsets()
		return err == nil && offs[srcTopic][0] > 0
	})
	stop()

	produceRange(n/2, n)
	p, _ = h.start()
	h.source("c", 99990, r(9999, "new")) // marker: judged after every other key
	want := 0
	for id := 1; id < n; id++ {
		if id%3 == 0 {
			want++
		}
	}
	want++ // the marker
	waitFor(t, 10*time.Second, "the marker's verdict", func() bool {
		for _, d := range h.outputs(h.cfg.Outputs.Divergences) {
			if d.Key == "orders/warehouse/9999" {
				return true
			}
		}
		return false
	})
	h.waitOutputs(h.cfg.Outputs.Repairs, want)
	divs := h.outputs(h.cfg.Outputs.Divergences)
	reps := h.outputs(h.cfg.Outputs.Repairs)
	seen := map[string]int{}
	for _, d := range divs {
		seen[d.Key]++
		if d.Body["kind"] != "missing" {
			t.Errorf("unexpected %v", d.Body)
		}
	}
	if len(divs) != want || len(reps) != want {
		t.Fatalf("%d divergences and %d repairs, want %d each: %v", len(divs), len(reps), want, kindsOf(divs))
	}
	for id := 1; id < n; id++ {
		k := fmt.Sprintf("orders/warehouse/%d", id)
		if exp := map[bool]int{true: 1, false: 0}[id%3 == 0]; seen[k] != exp {
			t.Errorf("%s: %d divergences, want %d", k, seen[k], exp)
		}
	}
	offs, err := p.Store().Offsets()
	if err != nil {
		t.Fatal(err)
	}
	if offs[srcTopic][0] == 0 || offs[tgtTopic][0] == 0 {
		t.Errorf("stored offsets %v", offs)
	}
}

// The offsets stored with the state are the truth: a new state dir reads
// every input from the start even when the group has committed offsets, and
// reaches the same verdict with the same id.
func TestNewStateDirReadsFromTheStart(t *testing.T) {
	h := newHarness(t, 500*time.Millisecond, "off")
	h.source("c", 100, row{ID: 1, Amount: "1.00", Status: "new", Created: created})
	_, stop := h.start()
	first := h.waitOutputs(h.cfg.Outputs.Divergences, 1)
	stop() // commits the group's offsets on the way out

	h.cfg.State.Dir = t.TempDir()
	p, _ := h.start()
	waitFor(t, 10*time.Second, "key 1 read again into the new state", func() bool {
		ks, err := p.Store().KeyState("orders", "1")
		return err == nil && ks != nil && ks.Source != nil
	})
	divs := h.waitOutputs(h.cfg.Outputs.Divergences, 2)
	if divs[1].Body["id"] != first[0].Body["id"] {
		t.Fatalf("the same divergence got a new id: %v vs %v", divs[1].Body["id"], first[0].Body["id"])
	}
}

// A flat-json target (Debezium's unwrap SMT, deletes as __deleted rows) is
// judged against a schema-wrapped Postgres source like any other.
func TestFlatJSONTarget(t *testing.T) {
	h := newHarnessWith(t, 500*time.Millisecond, "auto", "flat-json", "lsn")
	p, _ := h.start()
	flat := func(id, lsn, srcLSN int64, amount, status string, deleted bool) {
		h.produce(tgtTopic, fmt.Sprintf(`{"order_id":%d}`, id), fmt.Sprintf(
			`{"order_id":%d,"amount":"%s","status":"%s","created_at":"%s","loaded_at":"x","_src_lsn":%d,"__op":"c","__lsn":%d,"__source_ts_ms":%d,"__deleted":"%t"}`,
			id, amount, status, created.Format(time.RFC3339Nano), srcLSN, lsn, time.Now().UnixMilli(), deleted))
	}
	r := func(id int64, amount string) row { return row{ID: id, Amount: amount, Status: "new", Created: created} }
	h.source("c", 100, r(1, "10.00"))
	flat(1, 5000, 100, "10.00", "new", false) // in sync
	h.source("c", 200, r(2, "20.00"))
	flat(2, 5001, 200, "20.00", "new", false)
	h.source("d", 210, r(2, "20.00"))
	flat(2, 5002, 200, "20.00", "new", true) // the delete, as a rewritten row
	h.source("c", 300, r(3, "30.00"))
	flat(3, 5003, 300, "31.00", "new", false) // a wrong amount: conflict
	waitFor(t, 10*time.Second, "key 1 in sync", inSync(p, "1"))
	h.waitOutputs(h.cfg.Outputs.Divergences, 1)
	h.source("c", 9900, r(99, "1.00")) // marker
	waitFor(t, 10*time.Second, "the marker's verdict", func() bool { return len(h.outputs(h.cfg.Outputs.Divergences)) >= 2 })
	divs := h.outputs(h.cfg.Outputs.Divergences)
	got := map[string]any{}
	for _, d := range divs {
		got[d.Key] = d.Body["kind"]
	}
	want := map[string]any{"orders/warehouse/3": "conflict", "orders/warehouse/99": "missing"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("divergences %v, want %v", got, want)
	}
}
