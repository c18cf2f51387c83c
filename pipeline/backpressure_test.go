package pipeline

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// While the brokers refuse recon's output, the outbox grows only up to
// outbox.max_bytes: then the sweeper holds its verdicts and the consumer
// stops reading (its lag grows, nothing more is folded). Once the brokers
// take output again the outbox drains, reading resumes, and every verdict of
// the whole input comes out, exactly as without the fault.
func TestOutboxFullPausesConsumption(t *testing.T) {
	h := newHarness(t, 300*time.Millisecond, "auto")
	const maxBytes = 64 << 10
	h.cfg.Outbox.MaxBytes = maxBytes
	off := 0.0
	h.cfg.Datasets[0].Repair.MaxDivergentRatio = &off // 200 of 250 keys diverge on purpose
	// A refused produce must fail within seconds, not the default 10 s
	// attempt (after a 5 s metadata wait): three failures open the breaker,
	// and at the defaults that takes longer than the test waits on a busy
	// machine. The breaker stays open as long as it would in production.
	opts := faultOptions(2 * time.Second)
	opts.Publisher.BreakerTimeout = 0
	p, _ := h.startWith(opts)

	// Every produce to recon's outputs fails, as with a cluster short of
	// in-sync replicas; the test's own input still gets through.
	var faults []kfake.Fault
	for _, topic := range []string{h.cfg.Outputs.Divergences, h.cfg.Outputs.Repairs} {
		faults = append(faults, kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: topic, Err: kerr.NotEnoughReplicas, Count: -1})
	}
	fault := h.broker.Cluster().Fault(faults...)

	var maxSeen int64
	outbox := func() (int, int64) {
		n, b := p.Store().OutboxDepth()
		maxSeen = max(maxSeen, b)
		return n, b
	}
	gauge := func(name string, labels map[string]string) float64 { return metricValue(t, p, name, labels) }
	consumed := func(system string) float64 {
		return gauge("recon_events_consumed_total", map[string]string{"system": system})
	}

	// Phase 1: 150 keys the replica never gets. Their verdicts (a
	// divergence and a repair each, about 2 KB) would take some 300 KB.
	for id := int64(1); id <= 150; id++ {
		h.source("c", 100+id, row{ID: id, Amount: "1.00", Status: "new", Created: created})
	}
	waitFor(t, 20*time.Second, "the breaker to open", func() bool { return gauge("recon_breaker_state", nil) == 2 })
	waitFor(t, 20*time.Second, "consumption to pause", func() bool {
		outbox()
		return gauge("recon_consumer_paused", nil) == 1
	})
	if got := consumed("postgres"); got != 150 {
		t.Fatalf("%v source events folded before the pause, want all 150", got)
	}

	// Phase 2, produced while paused: 100 more keys, the even ones
	// replicated. recon must not read them until the outbox drains.
	for id := int64(1001); id <= 1100; id++ {
		r := row{ID: id, Amount: "2.00", Status: "new", Created: created}
		h.source("c", 100+id, r)
		if id%2 == 0 {
			h.target("c", id, 100+id, r)
		}
	}
	waitFor(t, 20*time.Second, "the consumer lag to show phase 2 waiting", func() bool {
		outbox()
		return gauge("recon_consumer_lag_records", map[string]string{"topic": srcTopic}) >= 100 &&
			gauge("recon_consumer_lag_records", map[string]string{"topic": tgtTopic}) >= 50
	})
	// The lag is measured from the durable position: with 100 records
	// behind on the source, none of phase 2 was folded.
	if got := consumed("postgres"); got != 150 {
		t.Fatalf("%v source events folded while paused, want 150", got)
	}
	if got := consumed("warehouse"); got != 0 {
		t.Fatalf("%v target events folded while paused, want 0", got)
	}
	if n := len(h.outputs(h.cfg.Outputs.Divergences)); n != 0 {
		t.Fatalf("%d divergences published through a failing broker", n)
	}
	records, bytes := outbox()
	// The bound holds to within one verdict: the sweeper asks before each.
	const slack = 8 << 10
	if bytes < maxBytes*9/10 || maxSeen > maxBytes+slack {
		t.Fatalf("outbox at %d bytes (max seen %d), want it held near outbox.max_bytes %d", bytes, maxSeen, maxBytes)
	}
	t.Logf("paused with %d records, %d bytes in the outbox (bound %d, max seen %d); %d produce requests refused",
		records, bytes, maxBytes, maxSeen, fault.Hits())

	// Readiness names the full outbox.
	var outboxCheck Check
	for _, c := range p.Readiness() {
		if c.Name == "outbox" {
			outboxCheck = c
		}
	}
	if outboxCheck.OK || !strings.Contains(outboxCheck.Detail, "input paused") {
		t.Errorf("readiness outbox check while paused: %+v", outboxCheck)
	}

	// The brokers recover: everything drains and phase 2 is judged.
	fault.Remove()
	waitFor(t, 60*time.Second, "every verdict published and the outbox empty", func() bool {
		n, _ := outbox()
		return n == 0 && consumed("postgres") == 250 && consumed("warehouse") == 50 &&
			len(uniqueIDs(h.outputs(h.cfg.Outputs.Divergences))) == 200 && len(uniqueIDs(h.outputs(h.cfg.Outputs.Repairs))) == 200
	})
	waitFor(t, 10*time.Second, "ready after the drain", func() bool { return p.Readiness().OK() })
	if got := gauge("recon_consumer_paused", nil); got != 0 {
		t.Fatalf("recon_consumer_paused %v after draining, want 0", got)
	}
	if maxSeen > maxBytes+slack {
		t.Fatalf("outbox reached %d bytes, past outbox.max_bytes %d by more than one verdict", maxSeen, maxBytes)
	}

	// Exact verdicts: a missing divergence (and its repair) for each key
	// the replica lacks, and nothing else.
	var want []string
	for id := 1; id <= 150; id++ {
		want = append(want, fmt.Sprintf("orders/warehouse/%d", id))
	}
	for id := 1001; id <= 1100; id += 2 {
		want = append(want, fmt.Sprintf("orders/warehouse/%d", id))
	}
	slices.Sort(want)
	for _, topic := range []string{h.cfg.Outputs.Divergences, h.cfg.Outputs.Repairs} {
		evs := uniqueIDs(h.outputs(topic))
		var keys []string
		for _, e := range evs {
			if e.Body["kind"] != "missing" || (topic == h.cfg.Outputs.Divergences && e.Body["event"] != "opened") {
				t.Errorf("%s: unexpected %v %v for %s", topic, e.Body["kind"], e.Body["event"], e.Key)
			}
			keys = append(keys, e.Key)
		}
		slices.Sort(keys)
		if !slices.Equal(keys, want) {
			t.Errorf("%s: %d keys, want the %d keys without a replica row:\n got %v", topic, len(keys), len(want), keys)
		}
		if dups := len(h.outputs(topic)) - len(evs); dups > 0 {
			t.Logf("%s: %d records published twice (same id; harmless downstream)", topic, dups)
		}
	}
}

// uniqueIDs keeps the first event of each recon-id.
func uniqueIDs(evs []outEvent) map[string]outEvent {
	out := make(map[string]outEvent, len(evs))
	for _, e := range evs {
		if _, ok := out[e.Headers["recon-id"]]; !ok {
			out[e.Headers["recon-id"]] = e
		}
	}
	return out
}
