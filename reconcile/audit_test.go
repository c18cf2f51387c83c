package reconcile

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/recon-dev/recon/compare"
	"github.com/recon-dev/recon/repair"
	"github.com/recon-dev/recon/state"
)

// auditEngine is an engine over the fixture's store whose dataset config has
// hash configHash, under rules version rules.
func (f *fixture) auditEngine(mode, configHash, rules string) *Engine {
	f.t.Helper()
	e, err := New(f.store, Options{
		Datasets: []Dataset{{Name: "orders", Window: 30 * time.Second, PayloadFull: true, ConfigHash: configHash,
			Source: System{Name: "pg", Topic: "src"}, Targets: []System{{Name: "wh", Topic: "tgt"}}}},
		Outputs:      Outputs{Divergences: "div", Repairs: "rep", DLQ: "dlq"},
		RulesVersion: rules,
		Hasher:       compare.NewHasher([]byte("0123456789abcdef")),
		Planner:      repair.NewPlanner(map[string]repair.Policy{"orders": {Mode: mode, AutoKinds: []string{"missing"}}}),
		Progress:     f.prog,
		Now:          f.clk.now,
	})
	if err != nil {
		f.t.Fatal(err)
	}
	return e
}

func (f *fixture) auditLog() []state.AuditRecord {
	f.t.Helper()
	recs, err := f.store.AuditRecords(0, 0)
	if err != nil {
		f.t.Fatal(err)
	}
	v, err := f.store.VerifyAudit()
	if err != nil || !v.OK() || v.Records != uint64(len(recs)) {
		f.t.Fatalf("audit chain of %d records: %+v, %v (break %v)", len(recs), v, err, v.Break)
	}
	return recs
}

// A divergence opened, its repair held for approval, then resolved by the
// target converging, which supersedes the repair: each decision is an audit
// record, chained in order after the config the engine started with, each
// carrying the rules version and the config hash, as the events do.
func TestAuditRecordsDecisions(t *testing.T) {
	f := newFixture(t, "approve")
	f.e = f.auditEngine("approve", "cfg1", "7")
	f.change("pg", 1, compare.OpUpsert, row(1, "1.00", "new"))
	f.clk.advance(time.Minute)
	if res := f.sweep(); res.Fired != 1 {
		t.Fatalf("sweep %+v, want the missing key judged", res)
	}
	opened := f.auditLog()
	f.change("wh", 1, compare.OpUpsert, row(1, "1.00", "new"))
	recs := f.auditLog()

	type want struct{ action, detail string }
	wants := []want{
		{repair.AuditConfigChanged, "config (none) -> cfg1, rules version 7"},
		{repair.AuditOpened, "missing: "},
		{repair.AuditRepairPlanned, "upsert repair pending approval"},
		{repair.AuditResolved, "the target converged with the source"},
		{repair.AuditSuperseded, "no longer needed: the target converged"},
	}
	if len(recs) != len(wants) || len(opened) != 3 {
		t.Fatalf("%d records after the verdict, %d in all: %+v", len(opened), len(recs), recs)
	}
	reps, err := f.store.Repairs("", 0)
	if err != nil || len(reps) != 1 || reps[0].State != "superseded" {
		t.Fatalf("repairs %+v, %v", reps, err)
	}
	divID, repID := reps[0].DivergenceID, reps[0].ID
	for i, w := range wants {
		r := recs[i]
		if r.Action != w.action || !strings.HasPrefix(r.Detail, w.detail) || r.Actor != "recon" || r.Dataset != "orders" ||
			r.RulesVersion != "7" || r.ConfigHash != "cfg1" {
			t.Errorf("record %d: %+v, want %s %q…", i, r, w.action, w.detail)
		}
		if i == 0 {
			continue
		}
		if r.Target != "wh" || r.Key != "1" || r.DivergenceID != divID || (i > 1 && r.RepairID != repID) {
			t.Errorf("record %d names %s/%s %s %s, want wh/1 %s %s", i, r.Target, r.Key, r.DivergenceID, r.RepairID, divID, repID)
		}
	}
	if !recs[1].Time.Equal(f.clk.t) || !recs[3].Time.Equal(f.clk.t) {
		t.Errorf("times %v %v, want the engine's clock %v", recs[1].Time, recs[3].Time, f.clk.t)
	}

	// The events carry the same rules version and config hash.
	out, err := f.store.Outbox(0)
	if err != nil || len(out) != 2 {
		t.Fatalf("outbox %d records, %v; want opened and resolved", len(out), err)
	}
	for _, o := range out {
		var ev repair.Divergence
		if err := json.Unmarshal(o.Value, &ev); err != nil || ev.RulesVersion != "7" || ev.ConfigHash != "cfg1" {
			t.Errorf("event %s: %+v, %v", o.Value, ev, err)
		}
	}
	var held map[string]any
	if err := json.Unmarshal(reps[0].Event, &held); err != nil || held["rules_version"] != "7" || held["config_hash"] != "cfg1" {
		t.Errorf("repair event %s: %v", reps[0].Event, err)
	}
}

// A changed config or rules version is itself an audit record when the
// engine starts, before any decision under it; an unchanged one is not, and
// a dataset gone from the config is recorded as removed.
func TestAuditRecordsConfigChanges(t *testing.T) {
	f := newFixture(t, "auto")
	f.auditEngine("auto", "cfg1", "1")
	f.auditEngine("auto", "cfg1", "1") // a restart with the same config
	f.auditEngine("auto", "cfg2", "1")
	f.auditEngine("auto", "cfg2", "2")
	f.engine("auto", System{Name: "wh", Topic: "tgt"}) // no config hash: not tracked
	// orders is gone from the config.
	if _, err := New(f.store, Options{Hasher: f.e.opts.Hasher, Planner: repair.NewPlanner(nil), Progress: f.prog,
		Now: f.clk.now, RulesVersion: "2"}); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range f.auditLog() {
		if r.Action != repair.AuditConfigChanged || r.Dataset != "orders" {
			t.Errorf("record %+v", r)
		}
		got = append(got, r.Detail)
	}
	want := []string{
		"config (none) -> cfg1, rules version 1",
		"config cfg1 -> cfg2",
		"config cfg2 unchanged, rules version 1 -> 2",
		"dataset removed from config (config cfg2, rules version 2)",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("config records:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if cfgs, _ := f.store.DatasetConfigs(); len(cfgs) != 0 {
		t.Fatalf("configs of removed datasets kept: %v", cfgs)
	}
}

// Each repair_planned record says what became of the repair: published at
// once, as a dry run, or held.
func TestAuditRepairPlannedSaysItsState(t *testing.T) {
	for mode, want := range map[string]string{
		"auto":    "upsert repair to be published automatically",
		"dry-run": "upsert repair published as a dry run",
		"approve": "upsert repair pending approval",
	} {
		t.Run(mode, func(t *testing.T) {
			f := newFixture(t, mode)
			f.e = f.auditEngine(mode, "cfg1", "1")
			f.change("pg", 1, compare.OpUpsert, row(1, "1.00", "new"))
			f.clk.advance(time.Minute)
			f.sweep()
			recs := f.auditLog()
			if len(recs) < 3 || recs[2].Action != repair.AuditRepairPlanned || recs[2].Detail != want || recs[2].RepairID == "" {
				t.Fatalf("records %+v, want the third to be repair_planned %q", recs, want)
			}
			// Only a repair that went out gets a published record.
			wantLen := 3
			if mode == "auto" {
				wantLen = 4
				if p := recs[3]; p.Action != repair.AuditPublished || p.RepairID != recs[2].RepairID ||
					p.Detail != "upsert repair published automatically (missing is in auto_kinds)" {
					t.Fatalf("record after repair_planned %+v, want published", p)
				}
			}
			if len(recs) != wantLen {
				t.Fatalf("%d records %+v, want %d", len(recs), recs, wantLen)
			}
		})
	}
}
