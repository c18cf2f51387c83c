package reconcile

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/recon-dev/recon/compare"
	"github.com/recon-dev/recon/repair"
	"github.com/recon-dev/recon/state"
)

// govFixture is the fixture with an engine under policy pol, with metrics.
type govFixture struct {
	*fixture
	m   *Metrics
	ctx context.Context
}

func newGov(t *testing.T, pol repair.Policy) *govFixture {
	t.Helper()
	f := newFixture(t, "off")
	g := &govFixture{fixture: f, ctx: context.Background()}
	g.restart(pol)
	return g
}

// restart builds a new engine over the fixture's store, as recon does at
// start, with fresh metrics.
func (g *govFixture) restart(pol repair.Policy) {
	g.t.Helper()
	if pol.AutoKinds == nil {
		pol.AutoKinds = []string{"missing", "lagging", "orphan"}
	}
	g.m = NewMetrics(prometheus.NewRegistry(), func() (int64, int64) { return 0, 0 })
	e, err := New(g.store, Options{
		Datasets: []Dataset{{Name: "orders", Window: 30 * time.Second, PayloadFull: true, ConfigHash: "cfg",
			Source: System{Name: "pg", Topic: "src"}, Targets: []System{{Name: "wh", Topic: "tgt"}}}},
		Outputs:      Outputs{Divergences: "div", Repairs: "rep", DLQ: "dlq"},
		RulesVersion: "1",
		Hasher:       compare.NewHasher([]byte("0123456789abcdef")),
		Planner:      repair.NewPlanner(map[string]repair.Policy{"orders": pol}),
		Progress:     g.prog,
		Metrics:      g.m,
		Now:          g.clk.now,
	})
	if err != nil {
		g.t.Fatal(err)
	}
	g.e = e
}

// judge lets every open window expire and sweeps.
func (g *govFixture) judge() SweepResult {
	g.t.Helper()
	g.clk.advance(31 * time.Second)
	return g.sweep()
}

// repairs returns the repair records, by key.
func (g *govFixture) repairByKey(key string) state.RepairRecord {
	g.t.Helper()
	page, err := g.e.Repairs(RepairFilter{Limit: MaxPageSize})
	if err != nil {
		g.t.Fatal(err)
	}
	var found []state.RepairRecord
	for _, r := range page.Repairs {
		if r.Key == key && r.Reverts == "" {
			found = append(found, r)
		}
	}
	if len(found) != 1 {
		g.t.Fatalf("repairs of key %s: %+v", key, found)
	}
	return found[0]
}

// outbox returns the outbox records of topic, parsed, and drains them.
func (g *govFixture) outbox(topic string) []map[string]any {
	g.t.Helper()
	recs, err := g.store.Outbox(0)
	if err != nil {
		g.t.Fatal(err)
	}
	var out []map[string]any
	var seqs []uint64
	for _, r := range recs {
		seqs = append(seqs, r.Seq)
		if r.Topic != topic {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal(r.Value, &m); err != nil {
			g.t.Fatal(err)
		}
		out = append(out, m)
	}
	if err := g.store.DeleteOutbox(seqs...); err != nil {
		g.t.Fatal(err)
	}
	return out
}

// actions lists the audit log as "action:actor" from seq from on.
func (g *govFixture) actions(from int) []string {
	g.t.Helper()
	var out []string
	for _, r := range g.auditLog()[from:] {
		out = append(out, r.Action+":"+r.Actor)
	}
	return out
}

func (g *govFixture) counter(action, mode, outcome string) float64 {
	return testutil.ToFloat64(g.m.repairs.WithLabelValues("orders", action, mode, outcome))
}

func wantConflict(t *testing.T, err error, state string) *ConflictError {
	t.Helper()
	var ce *ConflictError
	if !errors.As(err, &ce) || !errors.Is(err, ErrConflict) {
		t.Fatalf("err = %v, want a conflict", err)
	}
	if ce.Repair.State != state {
		t.Fatalf("conflict %v: repair state %s, want %s", err, ce.Repair.State, state)
	}
	return ce
}

// Approve mode end to end: the repair waits, a named person approves it, it
// is published with mode approved and approved_by, the target applies it,
// and the repair is verified with its latency measured. Every decision is in
// the audit chain, which verifies.
func TestApproveFlow(t *testing.T) {
	g := newGov(t, repair.Policy{Mode: repair.ModeApprove})
	g.change("pg", 1, compare.OpUpsert, row(1, "1.00", "new"))
	if res := g.judge(); res.Fired != 1 {
		t.Fatalf("sweep %+v", res)
	}
	rec := g.repairByKey("1")
	if rec.State != state.RepairPending || rec.Mode != "approved" {
		t.Fatalf("planned %+v, want pending", rec)
	}
	if reps := g.outbox("rep"); len(reps) != 0 {
		t.Fatalf("a pending repair was published: %v", reps)
	}
	mark := len(g.auditLog())

	if _, err := g.e.ApproveRepair(g.ctx, rec.ID, ""); !errors.Is(err, ErrInvalid) {
		t.Fatalf("approve without an actor: %v", err)
	}
	if _, err := g.e.ApproveRepair(g.ctx, "nope", "alice"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("approve of an unknown repair: %v", err)
	}
	g.clk.advance(5 * time.Second)
	got, err := g.e.ApproveRepair(g.ctx, rec.ID, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if got.State != state.RepairPublished || got.Actor != "alice" || !got.PublishedAt.Equal(g.clk.t) ||
		!got.VerifyBy.Equal(g.clk.t.Add(30*time.Second)) {
		t.Fatalf("approved %+v", got)
	}
	reps := g.outbox("rep")
	if len(reps) != 1 || reps[0]["mode"] != "approved" || reps[0]["approved_by"] != "alice" || reps[0]["id"] != rec.ID ||
		reps[0]["dry_run"] != false || reps[0]["action"] != "upsert" {
		t.Fatalf("published %v", reps)
	}
	if _, err := g.e.ApproveRepair(g.ctx, rec.ID, "bob"); err == nil {
		t.Fatal("a repair was approved twice")
	} else {
		wantConflict(t, err, state.RepairPublished)
	}

	// The repair consumer applies it: the target converges.
	g.clk.advance(3 * time.Second)
	g.change("wh", 1, compare.OpUpsert, row(1, "1.00", "new"))
	got, err = g.e.Repair(rec.ID)
	if err != nil || got.State != state.RepairVerified || !got.DecidedAt.Equal(g.clk.t) {
		t.Fatalf("after convergence %+v, %v", got, err)
	}
	if n := testutil.CollectAndCount(g.m.repairLatency); n != 1 {
		t.Fatalf("%d latency series", n)
	}
	h := g.m.repairLatency.WithLabelValues("orders", "wh").(prometheus.Histogram)
	if want := `recon_repair_latency_seconds_sum{dataset="orders",target="wh"} 3`; !strings.Contains(gather(t, h), want) {
		t.Errorf("latency histogram:\n%s\nwant %s", gather(t, h), want)
	}
	for outcome, want := range map[string]float64{"pending": 1, "approved": 1, "verified": 1} {
		if v := g.counter("upsert", "approved", outcome); v != want {
			t.Errorf("repairs %s = %v, want %v", outcome, v, want)
		}
	}
	if got := g.actions(mark); !slices.Equal(got, []string{"approved:alice", "published:recon", "resolved:recon", "verified:recon"}) {
		t.Fatalf("audit %v", got)
	}
	for _, r := range g.auditLog()[mark:] {
		if r.RepairID != rec.ID || r.ConfigHash != "cfg" || r.RulesVersion != "1" || r.Key != "1" {
			t.Errorf("audit record %+v", r)
		}
	}
	divs, err := g.e.Divergences(DivergenceFilter{State: state.DivergenceResolved})
	if err != nil || len(divs.Divergences) != 1 || divs.Divergences[0].RepairID != rec.ID {
		t.Fatalf("resolved divergences %+v, %v", divs, err)
	}
}

func gather(t *testing.T, c prometheus.Collector) string {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			fmt.Fprintf(&b, "%s_sum{%s} %g\n", mf.GetName(), strings.Join(labels, ","), m.GetHistogram().GetSampleSum())
		}
	}
	return b.String()
}

// A rejected repair is never published, stays rejected when its divergence
// is judged again, and cannot be approved.
func TestRejectRepair(t *testing.T) {
	g := newGov(t, repair.Policy{Mode: repair.ModeApprove})
	g.change("pg", 1, compare.OpUpsert, row(1, "1.00", "new"))
	g.judge()
	rec := g.repairByKey("1")
	mark := len(g.auditLog())
	got, err := g.e.RejectRepair(g.ctx, rec.ID, "bob", "the replica is being rebuilt")
	if err != nil || got.State != state.RepairRejected || got.Actor != "bob" || got.Reason != "the replica is being rebuilt" {
		t.Fatalf("reject: %+v, %v", got, err)
	}
	if _, err := g.e.RejectRepair(g.ctx, rec.ID, "bob", ""); err == nil {
		t.Fatal("rejected twice")
	}
	_, err = g.e.ApproveRepair(g.ctx, rec.ID, "alice")
	wantConflict(t, err, state.RepairRejected)
	log := g.auditLog()
	if r := log[mark]; r.Action != repair.AuditRejected || r.Actor != "bob" || !strings.Contains(r.Detail, "rebuilt") {
		t.Fatalf("audit %+v", r)
	}
	// The target deletes its row: the divergence stays missing, its repair
	// rejected; a verdict of another kind plans the same repair again, which
	// stays rejected.
	g.change("wh", 1, compare.OpUpsert, row(1, "9.00", "wrong"))
	g.judge() // conflict now, not auto: resolve and reopen
	g.change("wh", 2, compare.OpDelete, row(1, "", ""))
	g.judge()
	if r, _ := g.e.Repair(rec.ID); r.State != state.RepairRejected {
		t.Fatalf("the rejected repair became %s", r.State)
	}
	if reps := g.outbox("rep"); len(reps) != 0 {
		t.Fatalf("published %v", reps)
	}
	if !strings.Contains(fmt.Sprint(g.actions(0)), "repair_planned") {
		t.Fatal("no planning audited")
	}
	last := g.auditLog()
	if r := last[len(last)-1]; r.Action != repair.AuditRepairPlanned || !strings.Contains(r.Detail, "not planned again: it was rejected by bob") {
		t.Fatalf("last audit %+v", r)
	}
}

// A pending repair whose pair converges is superseded, with an audit record,
// and approving it then is refused.
func TestSupersede(t *testing.T) {
	g := newGov(t, repair.Policy{Mode: repair.ModeApprove})
	g.change("pg", 1, compare.OpUpsert, row(1, "1.00", "new"))
	g.judge()
	rec := g.repairByKey("1")
	g.change("wh", 1, compare.OpUpsert, row(1, "1.00", "new"))
	_, err := g.e.ApproveRepair(g.ctx, rec.ID, "alice")
	ce := wantConflict(t, err, state.RepairSuperseded)
	if !strings.Contains(ce.Repair.Reason, "converged") {
		t.Fatalf("reason %q", ce.Repair.Reason)
	}
	if v := g.counter("upsert", "approved", "superseded"); v != 1 {
		t.Errorf("superseded counted %v", v)
	}
	if got := g.actions(0); got[len(got)-1] != "superseded:recon" {
		t.Fatalf("audit %v", got)
	}
}

// A pending repair whose source moved on since it was planned (the same
// divergence, so no new verdict) is not published as reviewed: approving it
// supersedes it and plans the repair of the current source row, which the
// person approves next.
func TestApproveStaleRepairPlansAFreshOne(t *testing.T) {
	g := newGov(t, repair.Policy{Mode: repair.ModeApprove})
	g.change("pg", 1, compare.OpUpsert, row(1, "1.00", "new"))
	g.judge()
	rec := g.repairByKey("1")
	g.change("pg", 2, compare.OpUpsert, row(1, "2.00", "paid"))
	_, err := g.e.ApproveRepair(g.ctx, rec.ID, "alice")
	ce := wantConflict(t, err, state.RepairSuperseded)
	if ce.Replacement == "" || !strings.Contains(ce.Reason, "source changed") {
		t.Fatalf("conflict %+v", ce)
	}
	fresh, err := g.e.ApproveRepair(g.ctx, ce.Replacement, "alice")
	if err != nil || fresh.State != state.RepairPublished || fresh.SourceVersion != "2" {
		t.Fatalf("fresh repair %+v, %v", fresh, err)
	}
	reps := g.outbox("rep")
	if len(reps) != 1 || reps[0]["after"].(map[string]any)["status"] != "paid" {
		t.Fatalf("published %v", reps)
	}
	ds, _ := g.e.Divergences(DivergenceFilter{State: state.DivergenceOpen})
	if len(ds.Divergences) != 1 || ds.Divergences[0].RepairID != fresh.ID {
		t.Fatalf("open divergence %+v", ds)
	}
}

// Revert in payload full: a lagging target repaired in auto mode gets its
// previous row back through a compensating repair with its own precondition;
// reverting twice, or reverting the compensating repair, is refused; the
// divergence that follows does not plan the reverted repair again.
func TestRevertRestoresPreviousRow(t *testing.T) {
	g := newGov(t, repair.Policy{Mode: repair.ModeAuto})
	g.change("pg", 1, compare.OpUpsert, row(1, "1.00", "new"))
	g.change("wh", 1, compare.OpUpsert, row(1, "1.00", "new"))
	g.change("pg", 2, compare.OpUpsert, row(1, "2.00", "paid"))
	g.judge()
	orig := g.repairByKey("1")
	if orig.State != state.RepairPublished || orig.Mode != "auto" {
		t.Fatalf("repair %+v", orig)
	}
	reps := g.outbox("rep")
	if len(reps) != 1 || reps[0]["before"].(map[string]any)["status"] != "new" || reps[0]["after"].(map[string]any)["status"] != "paid" {
		t.Fatalf("published %v: want the row it replaces as before", reps)
	}
	g.change("wh", 2, compare.OpUpsert, row(1, "2.00", "paid"))
	if r, _ := g.e.Repair(orig.ID); r.State != state.RepairVerified {
		t.Fatalf("repair %s after the target applied it", r.State)
	}
	mark := len(g.auditLog())
	comp, err := g.e.RevertRepair(g.ctx, orig.ID, "carol")
	if err != nil {
		t.Fatal(err)
	}
	if comp.Reverts != orig.ID || comp.State != state.RepairPublished || comp.Action != "upsert" ||
		comp.ExpectedDigest != orig.PreviousDigest || comp.PreviousDigest != orig.ExpectedDigest || comp.Actor != "carol" {
		t.Fatalf("compensating repair %+v\noriginal %+v", comp, orig)
	}
	if comp.ID != repair.ID("revert", orig.ID) {
		t.Fatal("the compensating repair's id is not derived from the original's")
	}
	reps = g.outbox("rep")
	if len(reps) != 1 || reps[0]["reverts"] != orig.ID || reps[0]["approved_by"] != "carol" ||
		reps[0]["after"].(map[string]any)["status"] != "new" || reps[0]["before"].(map[string]any)["status"] != "paid" {
		t.Fatalf("published %v", reps)
	}
	r, _ := g.e.Repair(orig.ID)
	if r.State != state.RepairReverted || r.RevertedBy != comp.ID {
		t.Fatalf("original %+v", r)
	}
	if got := g.actions(mark); !slices.Equal(got, []string{"reverted:carol", "published:recon"}) {
		t.Fatalf("audit %v", got)
	}
	_, err = g.e.RevertRepair(g.ctx, orig.ID, "carol")
	wantConflict(t, err, state.RepairReverted)
	_, err = g.e.RevertRepair(g.ctx, comp.ID, "carol")
	wantConflict(t, err, state.RepairPublished)

	// The consumer applies the compensating repair: verified at its
	// deadline, since the pair diverges again on purpose.
	g.change("wh", 3, compare.OpUpsert, row(1, "1.00", "new"))
	g.judge()
	if c, _ := g.e.Repair(comp.ID); c.State != state.RepairVerified {
		t.Fatalf("compensating repair %+v", c)
	}
	// The divergence that opened does not bring the reverted repair back.
	if reps := g.outbox("rep"); len(reps) != 0 {
		t.Fatalf("the reverted repair was published again: %v", reps)
	}
	if r, _ := g.e.Repair(orig.ID); r.State != state.RepairReverted {
		t.Fatalf("original became %s", r.State)
	}
	if v := g.counter("upsert", "auto", "reverted"); v != 1 {
		t.Errorf("reverted counted %v", v)
	}
}

// Reverting a repair that created the row deletes it; with payload
// reference, reverting one that replaced a row restores it by reference.
func TestRevertDeletesOrRestoresByReference(t *testing.T) {
	g := newGov(t, repair.Policy{Mode: repair.ModeAuto, Payload: "reference"})
	g.change("pg", 1, compare.OpUpsert, row(1, "1.00", "new"))
	g.change("pg", 1, compare.OpUpsert, row(2, "1.00", "new"))
	g.change("wh", 1, compare.OpUpsert, row(2, "1.00", "new"))
	g.change("pg", 2, compare.OpUpsert, row(2, "2.00", "paid"))
	g.judge()
	created, replaced := g.repairByKey("1"), g.repairByKey("2")
	g.outbox("rep")
	c1, err := g.e.RevertRepair(g.ctx, created.ID, "dave")
	if err != nil || c1.Action != "delete" || !c1.ExpectedDigest.IsZero() || c1.PreviousDigest != created.ExpectedDigest {
		t.Fatalf("revert of a created row: %+v, %v", c1, err)
	}
	c2, err := g.e.RevertRepair(g.ctx, replaced.ID, "dave")
	if err != nil || c2.Action != "upsert" || c2.ExpectedDigest != replaced.PreviousDigest {
		t.Fatalf("revert by reference: %+v, %v", c2, err)
	}
	reps := g.outbox("rep")
	if len(reps) != 2 || reps[1]["after"] != nil || !strings.Contains(reps[1]["rationale"].(string), "by reference") {
		t.Fatalf("published %v", reps)
	}
}

// A published repair the target does not apply within the window fails
// verification; the divergence stays open, and the failure is counted.
func TestFailedVerification(t *testing.T) {
	g := newGov(t, repair.Policy{Mode: repair.ModeAuto})
	g.change("pg", 1, compare.OpUpsert, row(1, "1.00", "new"))
	g.judge()
	rec := g.repairByKey("1")
	g.clk.advance(29 * time.Second)
	g.sweep()
	if r, _ := g.e.Repair(rec.ID); r.State != state.RepairPublished {
		t.Fatalf("decided before its deadline: %+v", r)
	}
	g.clk.advance(2 * time.Second)
	g.sweep()
	r, _ := g.e.Repair(rec.ID)
	if r.State != state.RepairFailed || !strings.Contains(r.Reason, "holds no row") {
		t.Fatalf("repair %+v", r)
	}
	if ts := g.target("1"); ts.Open == nil || ts.Open.RepairID != rec.ID {
		t.Fatalf("the divergence closed: %+v", ts)
	}
	if v := g.counter("upsert", "auto", "failed"); v != 1 {
		t.Errorf("failed counted %v", v)
	}
	if got := g.actions(0); got[len(got)-1] != "failed:recon" {
		t.Fatalf("audit %v", got)
	}
	// A late convergence does not turn a failed repair verified.
	g.change("wh", 1, compare.OpUpsert, row(1, "1.00", "new"))
	if r, _ := g.e.Repair(rec.ID); r.State != state.RepairFailed {
		t.Fatalf("repair became %s", r.State)
	}
}

// A repair is not failed while its target's input is not read up to the
// verification deadline (after a restart, recon reads a backlog that may hold
// the applied repair): it waits, and is verified once the row is read.
func TestVerificationWaitsForTheTargetInput(t *testing.T) {
	g := newGov(t, repair.Policy{Mode: repair.ModeAuto})
	g.change("pg", 1, compare.OpUpsert, row(1, "1.00", "new"))
	g.judge()
	rec := g.repairByKey("1")
	g.prog.ok = false
	g.clk.advance(31 * time.Second)
	g.sweep()
	if r, _ := g.e.Repair(rec.ID); r.State != state.RepairPublished {
		t.Fatalf("decided while the target's input lags: %+v", r)
	}
	g.change("wh", 1, compare.OpUpsert, row(1, "1.00", "new"))
	g.prog.ok = true
	g.clk.advance(time.Second)
	g.sweep()
	if r, _ := g.e.Repair(rec.ID); r.State != state.RepairVerified {
		t.Fatalf("repair %s once its row was read, want verified", r.State)
	}
}

// A mass divergence trips the ratio guard mid-sweep: the first repairs go
// out, the rest wait, a storm event and a guard_tripped record say why, and
// the gauge rises; as the targets catch up it clears, once.
func TestGuardTripsOnDivergentRatio(t *testing.T) {
	g := newGov(t, repair.Policy{Mode: repair.ModeAuto, MaxDivergentRatio: 0.1})
	for k := range 100 {
		g.change("pg", 1, compare.OpUpsert, row(k, "1.00", "new"))
		g.change("wh", 1, compare.OpUpsert, row(k, "1.00", "new"))
	}
	for k := range 30 {
		g.change("pg", 2, compare.OpUpsert, row(k, "2.00", "paid"))
	}
	if res := g.judge(); res.Fired != 30 {
		t.Fatalf("sweep %+v", res)
	}
	if p, gd := g.counter("upsert", "auto", "published"), g.counter("upsert", "approved", "guarded"); p != 10 || gd != 20 {
		t.Fatalf("published %v, guarded %v: want 10 and 20 (the 11th of 100 keys trips)", p, gd)
	}
	if v := testutil.ToFloat64(g.m.guardTripped.WithLabelValues("orders")); v != 1 {
		t.Fatalf("gauge %v", v)
	}
	st := g.e.Guards()["orders"]
	if !st.Tripped || st.Open != 30 || st.Keys != 100 || !strings.Contains(st.Reason, "max_divergent_ratio") {
		t.Fatalf("guard %+v", st)
	}
	divs := g.outbox("div")
	var storms []map[string]any
	for _, d := range divs {
		if d["kind"] == repair.KindStorm {
			storms = append(storms, d)
		}
	}
	if len(storms) != 1 || storms[0]["event"] != repair.EventStorm || !strings.Contains(storms[0]["rationale"].(string), "11 of 100 keys") {
		t.Fatalf("storm events %v", storms)
	}
	if got := strings.Count(fmt.Sprint(g.actions(0)), "guard_tripped:recon"); got != 1 {
		t.Fatalf("%d guard_tripped records", got)
	}

	// The targets catch up: at 5 open (half the ratio) it clears, once.
	for k := range 30 {
		g.change("wh", 2, compare.OpUpsert, row(k, "2.00", "paid"))
	}
	if v := testutil.ToFloat64(g.m.guardTripped.WithLabelValues("orders")); v != 0 {
		t.Fatalf("gauge %v after convergence", v)
	}
	acts := fmt.Sprint(g.actions(0))
	if strings.Count(acts, "guard_cleared:recon") != 1 || strings.Count(acts, "guard_tripped:recon") != 1 {
		t.Fatalf("audit %s", acts)
	}
	divs = g.outbox("div")
	if d := divs[len(divs)-1]; d["event"] != repair.EventStormCleared && !slices.ContainsFunc(divs, func(d map[string]any) bool { return d["event"] == repair.EventStormCleared }) {
		t.Fatalf("no storm_cleared event in %v", divs)
	}
	page, _ := g.e.Repairs(RepairFilter{State: state.RepairSuperseded})
	if len(page.Repairs) != 20 {
		t.Fatalf("%d guarded repairs superseded, want 20", len(page.Repairs))
	}
	page, _ = g.e.Repairs(RepairFilter{State: state.RepairVerified})
	if len(page.Repairs) != 10 {
		t.Fatalf("%d repairs verified, want 10", len(page.Repairs))
	}
}

// More automatic repairs in a minute than max_per_minute trips the guard
// too; it clears once the minute is over, without a new divergence.
func TestGuardTripsOnMaxPerMinute(t *testing.T) {
	g := newGov(t, repair.Policy{Mode: repair.ModeAuto, MaxPerMinute: 3})
	for k := range 5 {
		g.change("pg", 1, compare.OpUpsert, row(k, "1.00", "new"))
	}
	g.judge()
	if p, gd := g.counter("upsert", "auto", "published"), g.counter("upsert", "approved", "guarded"); p != 3 || gd != 2 {
		t.Fatalf("published %v, guarded %v", p, gd)
	}
	if st := g.e.Guards()["orders"]; !st.Tripped || !strings.Contains(st.Reason, "max_per_minute") {
		t.Fatalf("guard %+v", st)
	}
	g.clk.advance(20 * time.Second)
	if err := g.e.TickGuards(); err != nil {
		t.Fatal(err)
	}
	if !g.e.Guards()["orders"].Tripped {
		t.Fatal("cleared within the minute")
	}
	g.clk.advance(41 * time.Second) // the minute started at the sweep
	if err := g.e.TickGuards(); err != nil {
		t.Fatal(err)
	}
	if g.e.Guards()["orders"].Tripped {
		t.Fatal("still tripped after the minute")
	}
	acts := g.actions(0)
	if acts[len(acts)-1] != "guard_cleared:recon" {
		t.Fatalf("audit %v", acts)
	}
	// The guarded repairs stay pending for a person.
	page, _ := g.e.Repairs(RepairFilter{State: state.RepairPending})
	if len(page.Repairs) != 2 {
		t.Fatalf("pending %+v", page.Repairs)
	}
}

// A tripped guard is remembered across a restart: its gauge is up at once,
// and it is not audited again.
func TestGuardSurvivesRestart(t *testing.T) {
	g := newGov(t, repair.Policy{Mode: repair.ModeAuto, MaxDivergentRatio: 0.1})
	for k := range 20 {
		g.change("pg", 1, compare.OpUpsert, row(k, "1.00", "new"))
	}
	g.judge()
	if !g.e.Guards()["orders"].Tripped {
		t.Fatal("not tripped")
	}
	n := len(g.auditLog())
	g.restart(repair.Policy{Mode: repair.ModeAuto, MaxDivergentRatio: 0.1})
	if st := g.e.Guards()["orders"]; !st.Tripped || st.Open != 20 || st.Keys != 20 {
		t.Fatalf("after restart %+v", st)
	}
	if v := testutil.ToFloat64(g.m.guardTripped.WithLabelValues("orders")); v != 1 {
		t.Fatalf("gauge %v", v)
	}
	if got := g.actions(n); len(got) != 0 {
		t.Fatalf("audited again at start: %v", got)
	}
	// Turned off in config: it clears at start, audited.
	g.restart(repair.Policy{Mode: repair.ModeAuto})
	if g.e.Guards()["orders"].Tripped {
		t.Fatal("still tripped with the trigger off")
	}
	if got := g.actions(n); !slices.Equal(got, []string{"guard_cleared:recon"}) {
		t.Fatalf("audit %v", got)
	}
}

// Dry-run: every repair is planned, recorded and published flagged dry_run,
// never approved, verified or reverted.
func TestDryRun(t *testing.T) {
	g := newGov(t, repair.Policy{Mode: repair.ModeDryRun})
	g.change("pg", 1, compare.OpUpsert, row(1, "1.00", "new"))
	g.judge()
	rec := g.repairByKey("1")
	if rec.State != state.RepairDryRun || !rec.VerifyBy.IsZero() {
		t.Fatalf("repair %+v", rec)
	}
	reps := g.outbox("rep")
	if len(reps) != 1 || reps[0]["dry_run"] != true {
		t.Fatalf("published %v", reps)
	}
	_, err := g.e.ApproveRepair(g.ctx, rec.ID, "alice")
	wantConflict(t, err, state.RepairDryRun)
	_, err = g.e.RevertRepair(g.ctx, rec.ID, "alice")
	wantConflict(t, err, state.RepairDryRun)
	g.change("wh", 1, compare.OpUpsert, row(1, "1.00", "new"))
	g.judge()
	if r, _ := g.e.Repair(rec.ID); r.State != state.RepairDryRun {
		t.Fatalf("a dry run became %s", r.State)
	}
	if next, ok, _ := g.store.NextVerifyDeadline(); ok {
		t.Fatalf("a dry run is being verified, at %v", next)
	}
	if v := g.counter("upsert", "auto", "dry_run"); v != 1 {
		t.Errorf("dry_run counted %v", v)
	}
}

// Explain shows a key's state from the cache (newer than the store), its
// divergences, repairs and audit records; listings filter and page.
func TestExplainAndListings(t *testing.T) {
	g := newGov(t, repair.Policy{Mode: repair.ModeApprove})
	for k := range 5 {
		g.change("pg", 1, compare.OpUpsert, row(k, "1.00", "new"))
	}
	g.judge()
	g.change("wh", 1, compare.OpUpsert, row(0, "1.00", "new")) // resolves key 0
	// Folded, not checkpointed: Explain must still see it.
	key, _ := g.rules.Key(row(1, "", ""))
	r2, _, _ := g.rules.Normalize(row(1, "3.00", "late"))
	g.off++
	if err := g.e.Apply(g.ctx, []Item{{Topic: "tgt", Offset: g.off, Event: &compare.ChangeEvent{Dataset: "orders", System: "wh",
		Key: key, Op: compare.OpUpsert, Version: compare.Version{A: 7}, Row: r2, EventTime: g.clk.t}}}); err != nil {
		t.Fatal(err)
	}
	x, err := g.e.Explain("orders", "1")
	if err != nil {
		t.Fatal(err)
	}
	if x.Source == nil || x.Source.Version != "1" || len(x.Targets) != 1 || x.Targets[0].Head == nil ||
		x.Targets[0].Head.Version != "7" || x.Targets[0].Open == nil || x.Targets[0].Row["status"].Text != "late" {
		t.Fatalf("explanation %+v", x)
	}
	if x.VersionVector["pg"].Changes != 1 || x.VersionVector["wh"].Version != "7" || !x.VersionVector["wh"].LocalWrite {
		t.Fatalf("version vector %+v", x.VersionVector)
	}
	if len(x.Divergences) != 1 || len(x.Repairs) != 1 || len(x.Audit) != 2 || x.Repairs[0].State != state.RepairPending {
		t.Fatalf("records: %+v %+v %+v", x.Divergences, x.Repairs, x.Audit)
	}
	if b, err := json.Marshal(x); err != nil || !strings.Contains(string(b), `"fields":{"id":1}`) {
		t.Fatalf("json %s, %v", b, err)
	}
	if _, err := g.e.Explain("orders", "404"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown key: %v", err)
	}
	if _, err := g.e.Explain("nope", "1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown dataset: %v", err)
	}

	open, err := g.e.Divergences(DivergenceFilter{State: state.DivergenceOpen, Limit: 3})
	if err != nil || len(open.Divergences) != 3 || open.Next == "" {
		t.Fatalf("open page 1: %+v, %v", open, err)
	}
	more, err := g.e.Divergences(DivergenceFilter{State: state.DivergenceOpen, Limit: 3, Cursor: open.Next})
	if err != nil || len(more.Divergences) != 1 {
		t.Fatalf("open page 2: %+v, %v", more, err)
	}
	resolved, _ := g.e.Divergences(DivergenceFilter{State: state.DivergenceResolved, Kind: "missing"})
	if len(resolved.Divergences) != 1 || resolved.Divergences[0].Key != "0" {
		t.Fatalf("resolved %+v", resolved)
	}
	if _, err := g.e.Divergences(DivergenceFilter{State: "closed"}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("bad state: %v", err)
	}
	if _, err := g.e.Divergences(DivergenceFilter{Cursor: "%%"}); !errors.Is(err, ErrBadCursor) {
		t.Fatalf("bad cursor: %v", err)
	}
	pending, _ := g.e.Repairs(RepairFilter{State: state.RepairPending, Dataset: "orders", Target: "wh"})
	if len(pending.Repairs) != 4 {
		t.Fatalf("pending %+v", pending)
	}
	v := ViewRepair(pending.Repairs[0])
	if b, _ := json.Marshal(v); !strings.Contains(string(b), `"event":{"id":`) {
		t.Fatalf("repair view %s", b)
	}
}
