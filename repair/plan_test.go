package repair

import (
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/recon-dev/recon/compare"
)

func TestPlan(t *testing.T) {
	now := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	key := compare.Key{Fields: []string{"id"}, Values: []compare.Value{{Kind: compare.KindInt, Text: "42"}}}
	after := compare.Row{"id": {Kind: compare.KindInt, Text: "42"}}
	in := func(kind compare.DivergenceKind, deleted bool) Input {
		return Input{Dataset: "orders", Target: "wh", Key: key, Kind: kind, DivergenceID: "d1",
			SourceVersion: compare.Version{A: 7}, SourceDeleted: deleted, ExpectedDigest: compare.Digest{1},
			PreviousDigest: compare.Digest{2}, After: after, RulesVersion: "3", ConfigHash: "c0ffee"}
	}
	auto := Policy{Mode: ModeAuto, AutoKinds: []string{"missing", "orphan"}}
	tests := []struct {
		name     string
		pol      Policy
		in       Input
		decision Decision
		action   string
		dryRun   bool
		after    bool
	}{
		// off plans nothing: only divergence events.
		{"off", Policy{Mode: ModeOff}, in(compare.Missing, false), None, "", false, false},
		// dry-run publishes, flagged, so consumers can see what would happen.
		{"dry-run", Policy{Mode: ModeDryRun}, in(compare.Missing, false), Publish, ActionUpsert, true, true},
		// approve holds every repair for a person.
		{"approve", Policy{Mode: ModeApprove}, in(compare.Missing, false), Hold, ActionUpsert, false, true},
		// auto publishes its kinds at once...
		{"auto kind", auto, in(compare.Missing, false), Publish, ActionUpsert, false, true},
		// ...and holds the others.
		{"auto other kind", auto, in(compare.Conflict, false), Hold, ActionUpsert, false, true},
		// An orphan is repaired by a delete, which carries no row.
		{"orphan deletes", auto, in(compare.Orphan, true), Publish, ActionDelete, false, false},
		// payload: reference carries no row, only the version to fetch.
		{"reference payload", Policy{Mode: ModeAuto, AutoKinds: []string{"missing"}, Payload: "reference"}, in(compare.Missing, false), Publish, ActionUpsert, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := NewPlanner(map[string]Policy{"orders": tt.pol}).Plan(now, tt.in)
			if p.Decision != tt.decision {
				t.Fatalf("decision %v, want %v", p.Decision, tt.decision)
			}
			if tt.decision == None {
				return
			}
			r := p.Repair
			if r.Action != tt.action || r.DryRun != tt.dryRun || (r.After != nil) != tt.after {
				t.Fatalf("repair %+v", r)
			}
			if want := ID("orders", "wh", "42", "7", tt.action, compare.Digest{2}.String()); r.ID != want {
				t.Fatalf("id %s, want the deterministic %s", r.ID, want)
			}
			if r.PreviousDigest != (compare.Digest{2}) || r.DivergenceID != "d1" || r.SourceVersion != "7" ||
				r.RulesVersion != "3" || r.ConfigHash != "c0ffee" {
				t.Fatalf("repair %+v", r)
			}
		})
	}
}

// More automatic repairs per minute than the guard allows are held, and the
// budget comes back the next minute.
func TestBlastRadiusGuard(t *testing.T) {
	now := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	pl := NewPlanner(map[string]Policy{"orders": {Mode: ModeAuto, AutoKinds: []string{"missing"}, MaxPerMinute: 3}})
	in := Input{Dataset: "orders", Target: "wh", Kind: compare.Missing}
	var published, guarded int
	for i := 0; i < 5; i++ {
		p := pl.Plan(now.Add(time.Duration(i)*time.Second), in)
		if p.Decision == Publish {
			published++
		}
		if p.Guarded {
			guarded++
		}
	}
	if published != 3 || guarded != 2 {
		t.Fatalf("published %d guarded %d, want 3 and 2", published, guarded)
	}
	if p := pl.Plan(now.Add(61*time.Second), in); p.Decision != Publish {
		t.Fatalf("the budget should be back a minute later: %+v", p)
	}
}

// Two repairs of the same source version that find different rows on the
// target are different repairs: a stale write undid the first one.
func TestRepairIDIncludesPrecondition(t *testing.T) {
	pl := NewPlanner(map[string]Policy{"orders": {Mode: ModeAuto, AutoKinds: []string{"missing", "lagging"}}})
	in := Input{Dataset: "orders", Target: "wh", Kind: compare.Missing, SourceVersion: compare.Version{A: 7}}
	first := pl.Plan(time.Time{}, in)
	in.Kind, in.PreviousDigest = compare.Lagging, compare.Digest{9}
	second := pl.Plan(time.Time{}, in)
	if first.Repair.ID == second.Repair.ID {
		t.Fatal("a repair after a stale write reused the first repair's id")
	}
	if again := pl.Plan(time.Time{}, in); again.Repair.ID != second.Repair.ID {
		t.Fatal("the same repair planned twice got two ids")
	}
}

// The guard's state, trigger by trigger: each row says why.
func TestGuard(t *testing.T) {
	now := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	pol := Policy{Mode: ModeAuto, AutoKinds: []string{"missing"}, MaxPerMinute: 2, MaxDivergentRatio: 0.1}
	pl := NewPlanner(map[string]Policy{"orders": pol, "users": {Mode: ModeApprove, MaxDivergentRatio: 0.1}})
	in := Input{Dataset: "orders", Target: "wh", Kind: compare.Missing}
	steps := []struct {
		why        string
		at         time.Duration
		open, keys int64
		plan       int // repairs planned after evaluating the guard
		tripped    bool
	}{
		{"9 of 10 keys diverge, but fewer than GuardMinOpen are open: a small dataset", 0, 9, 10, 0, false},
		{"10 of 100 is the ratio itself, not above it", 0, 10, 100, 0, false},
		{"11 of 100 is above 10%: tripped", 0, 11, 100, 0, true},
		{"6 of 100 is above half the ratio: still tripped, no flapping", time.Second, 6, 100, 0, true},
		{"5 of 100 is half the ratio: cleared", 2 * time.Second, 5, 100, 0, false},
		{"3 repairs against a budget of 2 a minute: the third is held, which trips", 3 * time.Second, 1, 100, 3, true},
		{"a minute after the budget's minute started it clears", 64 * time.Second, 1, 100, 0, false},
	}
	for _, s := range steps {
		g := pl.Guard(now.Add(s.at), "orders", s.open, s.keys)
		for range s.plan {
			pl.Plan(now.Add(s.at), in)
		}
		if s.plan > 0 {
			g = pl.Guard(now.Add(s.at), "orders", s.open, s.keys)
		}
		if g.Tripped != s.tripped || (g.Reason != "") != s.tripped {
			t.Errorf("%s: guard %+v", s.why, g)
		}
	}
	if g := pl.Guard(now, "users", 50, 100); g.Tripped {
		t.Errorf("approve mode has no automatic repairs to guard: %+v", g)
	}
	// While the ratio is tripped, Plan holds automatic repairs.
	pl = NewPlanner(map[string]Policy{"orders": pol})
	pl.Guard(now, "orders", 50, 100)
	if p := pl.Plan(now, in); p.Decision != Hold || !p.Guarded {
		t.Fatalf("plan while the ratio is tripped: %+v", p)
	}
}

// A rendered repair read back re-renders to the same bytes, rows included.
func TestStoredRoundTrip(t *testing.T) {
	key := compare.Key{Fields: []string{"id"}, Values: []compare.Value{{Kind: compare.KindInt, Text: "42"}}}
	for _, r := range []Repair{
		{ID: "a", Key: key, Action: ActionUpsert, Kind: "missing", ExpectedDigest: compare.Digest{1},
			After: compare.Row{"id": {Kind: compare.KindInt, Text: "42"}, "j": {Kind: compare.KindJSON, Text: `{"b":1,"a":[2]}`}},
			Mode:  ModeAuto, CreatedAt: time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)},
		{ID: "b", Key: key, Action: ActionDelete, Kind: "orphan", PreviousDigest: compare.Digest{2},
			Before: compare.Row{"id": {Kind: compare.KindInt, Text: "42"}}, Mode: "approved", ApprovedBy: "alice", Reverts: "x"},
	} {
		want, err := Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		s, err := ParseStored(want)
		if err != nil {
			t.Fatal(err)
		}
		got, err := Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != string(want) {
			t.Errorf("re-rendered\n%s\nwant\n%s", got, want)
		}
	}
}

// Stored keeps Repair's fields, names and order, so a field added to one
// and not the other fails here rather than vanish on approval.
func TestStoredMatchesRepair(t *testing.T) {
	names := func(typ reflect.Type) []string {
		var out []string
		for f := range typ.Fields() {
			out = append(out, f.Tag.Get("json"))
		}
		return out
	}
	if a, b := names(reflect.TypeFor[Repair]()), names(reflect.TypeFor[Stored]()); !slices.Equal(a, b) {
		t.Fatalf("Repair %v\nStored %v", a, b)
	}
}
