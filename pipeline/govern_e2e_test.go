package pipeline

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/recon-dev/recon/repair"
	"github.com/recon-dev/recon/state"
)

// A mass divergence on kfake: 40 of 60 keys never reach the target. The
// blast-radius guard trips once 10 divergences are open (10 of 60 keys is
// above the default ratio of 10%): a storm event and a guard_tripped record
// say so, the gauge rises, and the repairs after it are held pending. Once
// the target catches up the guard clears, with a storm_cleared event.
func TestStormGuardEndToEnd(t *testing.T) {
	h := newHarness(t, 500*time.Millisecond, "auto")
	const keys, missing = 60, 40
	r := func(id int64) row {
		return row{ID: id, Amount: fmt.Sprintf("%d.25", id), Status: "new", Created: created}
	}
	for id := int64(1); id <= keys; id++ {
		h.source("c", id*10, r(id))
		if id > missing {
			h.target("c", id, id*10, r(id))
		}
	}
	p, _ := h.start()
	var storm outEvent
	waitFor(t, 20*time.Second, "a storm event", func() bool {
		for _, d := range h.outputs(h.cfg.Outputs.Divergences) {
			if d.Body["event"] == repair.EventStorm {
				storm = d
				return true
			}
		}
		return false
	})
	if storm.Key != "orders//" || storm.Headers["recon-kind"] != repair.KindStorm || storm.Body["kind"] != repair.KindStorm ||
		!strings.Contains(fmt.Sprint(storm.Body["rationale"]), "max_divergent_ratio 0.1") {
		t.Errorf("storm event %s %v %v", storm.Key, storm.Headers, storm.Body)
	}
	waitFor(t, 20*time.Second, "every divergence judged", func() bool {
		n := 0
		for _, d := range h.outputs(h.cfg.Outputs.Divergences) {
			if d.Body["event"] == "opened" {
				n++
			}
		}
		return n == missing
	})
	if v := metricValue(t, p, "recon_repair_guard_tripped", map[string]string{"dataset": "orders"}); v != 1 {
		t.Errorf("recon_repair_guard_tripped = %v, want 1", v)
	}
	published := metricValue(t, p, "recon_repairs_total", map[string]string{"outcome": "published"})
	guarded := metricValue(t, p, "recon_repairs_total", map[string]string{"outcome": "guarded"})
	if published+guarded != missing || published >= 10 || guarded < missing-10 {
		t.Errorf("%v repairs published and %v guarded, want at most 9 out before the guard held the rest", published, guarded)
	}
	pending, err := p.Store().Repairs(state.RepairPending, 0)
	if err != nil || float64(len(pending)) != guarded {
		t.Errorf("%d pending repairs, %v: want the %v guarded ones", len(pending), err, guarded)
	}
	if reps := h.outputs(h.cfg.Outputs.Repairs); float64(len(reps)) > published {
		t.Errorf("%d repair events, but only %v published", len(reps), published)
	}

	// The target catches up: the guard clears.
	for id := int64(1); id <= missing; id++ {
		h.target("c", 1000+id, id*10, r(id))
	}
	waitFor(t, 20*time.Second, "a storm_cleared event", func() bool {
		for _, d := range h.outputs(h.cfg.Outputs.Divergences) {
			if d.Body["event"] == repair.EventStormCleared {
				return true
			}
		}
		return false
	})
	waitFor(t, 10*time.Second, "the gauge down", func() bool {
		return metricValue(t, p, "recon_repair_guard_tripped", map[string]string{"dataset": "orders"}) == 0
	})
	recs, err := p.Store().AuditRecords(0, 0)
	if err != nil {
		t.Fatal(err)
	}
	var guardActions []string
	for _, rec := range recs {
		if rec.Action == repair.AuditGuardTripped || rec.Action == repair.AuditGuardCleared {
			guardActions = append(guardActions, rec.Action)
		}
	}
	if fmt.Sprint(guardActions) != "[guard_tripped guard_cleared]" {
		t.Errorf("guard audit records %v", guardActions)
	}
	if v, err := p.Store().VerifyAudit(); err != nil || !v.OK() {
		t.Errorf("audit chain: %+v, %v", v, err)
	}
}

// Dry-run on kfake: the repair is planned, recorded as dry_run and published
// flagged dry_run; when the target converges it is not verified, as nothing
// was meant to apply it.
func TestDryRunEndToEnd(t *testing.T) {
	h := newHarness(t, 500*time.Millisecond, "dry-run")
	r := row{ID: 1, Amount: "12.50", Status: "new", Created: created}
	h.source("c", 100, r)
	p, _ := h.start()
	reps := h.waitOutputs(h.cfg.Outputs.Repairs, 1)
	if reps[0].Body["dry_run"] != true || reps[0].Body["mode"] != "auto" {
		t.Fatalf("repair event %v", reps[0].Body)
	}
	id := fmt.Sprint(reps[0].Body["id"])
	h.target("c", 1, 100, r)
	h.waitOutputs(h.cfg.Outputs.Divergences, 2) // opened, resolved
	rec, err := p.Store().Repair(id)
	if err != nil || rec == nil || rec.State != state.RepairDryRun {
		t.Fatalf("repair record %+v, %v", rec, err)
	}
	if v := metricValue(t, p, "recon_repairs_total", map[string]string{"outcome": "verified"}); v != 0 {
		t.Errorf("a dry run counted verified: %v", v)
	}
	if v := metricValue(t, p, "recon_repairs_total", map[string]string{"outcome": "dry_run"}); v != 1 {
		t.Errorf("dry_run counted %v", v)
	}
}
