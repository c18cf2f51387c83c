package pipeline

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/recon-dev/recon/config"
	"github.com/recon-dev/recon/state"
)

// A shutdown while the broker refuses every produce to recon's outputs ends
// within shutdown_timeout (it does not wait for a broker that may never come
// back), leaves the unpublished verdicts in the outbox on disk, and the next
// start publishes them, each once.
func TestShutdownWhileBrokerRefusesProduceKeepsOutbox(t *testing.T) {
	h := newHarness(t, 300*time.Millisecond, "auto")
	off := 0.0 // every key goes missing on purpose: no storm guard
	h.cfg.Datasets[0].Repair.MaxDivergentRatio = &off
	const timeout = 2 * time.Second
	h.cfg.ShutdownTimeout = config.Duration(timeout)
	var faults []*kfake.FaultHandle
	for _, topic := range []string{h.cfg.Outputs.Divergences, h.cfg.Outputs.Repairs} {
		faults = append(faults, h.broker.Cluster().Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: topic, Err: kerr.NotEnoughReplicas, Count: -1}))
	}

	const n = 5
	for id := int64(1); id <= n; id++ {
		h.source("c", id*10, row{ID: id, Amount: fmt.Sprintf("%d.25", id), Status: "new", Created: created})
	}
	p, stop := h.start()
	store := p.Store()
	waitFor(t, 10*time.Second, "the verdicts in the outbox", func() bool {
		depth, _ := store.OutboxDepth()
		return depth >= 2*n // a divergence and a repair per key
	})
	began := time.Now()
	stop()
	// The flush is bounded by shutdown_timeout; stopping the consumer and
	// the last checkpoint come on top, seconds at most even on a loaded
	// machine. Without the bound the flush would wait for the broker.
	if took := time.Since(began); took > timeout+10*time.Second {
		t.Fatalf("shutdown took %s with shutdown_timeout %s", took, timeout)
	}
	if got := h.outputs(h.cfg.Outputs.Divergences); len(got) != 0 {
		t.Fatalf("%d divergences published while the broker refused them", len(got))
	}

	st, err := state.Open(h.cfg.State.Dir, state.Options{})
	if err != nil {
		t.Fatalf("reopening the state after shutdown: %v", err)
	}
	depth, _ := st.OutboxDepth()
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if depth < 2*n {
		t.Fatalf("outbox holds %d records after shutdown, want the %d unpublished", depth, 2*n)
	}

	for _, f := range faults {
		f.Remove()
	}
	p, _ = h.start()
	divs := h.waitOutputs(h.cfg.Outputs.Divergences, n)
	reps := h.waitOutputs(h.cfg.Outputs.Repairs, n)
	waitFor(t, 10*time.Second, "the outbox to drain", func() bool { d, _ := p.Store().OutboxDepth(); return d == 0 })
	ids := map[string]int{}
	for _, d := range append(divs, reps...) {
		ids[fmt.Sprint(d.Body["id"])]++
	}
	if len(divs) != n || len(reps) != n || len(ids) != 2*n {
		t.Fatalf("%d divergences and %d repairs with %d distinct ids, want %d each, all distinct: %v", len(divs), len(reps), len(ids), n, kindsOf(divs))
	}
}

// After a restart, Kafka's committed offsets catch up with the stored ones at
// once, before any new input: here under a new group name, which has no
// commits at all, as a crash leaves Kafka's commits behind the state store.
// Lag monitors reading the group then see where recon really is.
func TestAssignmentCommitsStoredOffsets(t *testing.T) {
	h := newHarness(t, time.Second, "auto")
	for id := int64(1); id <= 5; id++ {
		r := row{ID: id, Amount: fmt.Sprintf("%d.25", id), Status: "new", Created: created}
		h.source("c", id*10, r)
		h.target("c", id, id*10, r)
	}
	p, stop := h.start()
	waitFor(t, 10*time.Second, "every input read", func() bool {
		offs, err := p.Store().Offsets()
		return err == nil && offs[srcTopic][0] == 5 && offs[tgtTopic][0] == 5
	})
	stop()

	h.cfg.Kafka.Group = "recon-test-renamed"
	h.start()
	adm := kadm.NewClient(h.prod)
	waitFor(t, 10*time.Second, "the new group's commits", func() bool {
		committed, err := adm.FetchOffsets(context.Background(), h.cfg.Kafka.Group)
		if err != nil {
			return false
		}
		src, ok1 := committed.Lookup(srcTopic, 0)
		tgt, ok2 := committed.Lookup(tgtTopic, 0)
		return ok1 && ok2 && src.At == 5 && tgt.At == 5
	})
}
