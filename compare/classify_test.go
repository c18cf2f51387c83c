package compare

import (
	"testing"
	"time"
)

func TestAssessAndClassify(t *testing.T) {
	t0 := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	dg := func(b byte) Digest { return Digest{b} }
	v := func(n uint64) Version { return Version{A: n} }
	src := func(n uint64, d byte, seen int) SourceVersion {
		return SourceVersion{Version: v(n), Digest: dg(d), SeenAt: at(seen), EventTime: at(seen)}
	}
	del := func(n uint64, seen int) SourceVersion {
		return SourceVersion{Version: v(n), Deleted: true, SeenAt: at(seen), EventTime: at(seen)}
	}
	tgt := func(n uint64, d byte, seen int) *TargetRow {
		return &TargetRow{Version: v(n), Digest: dg(d), SeenAt: at(seen)}
	}
	tdel := func(n uint64, seen int) *TargetRow { return &TargetRow{Version: v(n), Deleted: true, SeenAt: at(seen)} }
	const w = 30 * time.Second

	tests := []struct {
		name     string
		p        Pair
		inSync   bool
		judged   bool
		deadline time.Time
		kind     DivergenceKind // for pairs out of sync
	}{
		{
			// Same digest at the head: nothing to judge.
			name: "in sync", p: Pair{Source: []SourceVersion{src(1, 'a', 0)}, Target: tgt(7, 'a', 1)},
			inSync: true, judged: true,
		},
		{
			// Both sides deleted the key: in sync whatever their digests.
			name: "both deleted", p: Pair{Source: []SourceVersion{src(1, 'a', 0), del(2, 5)}, Target: tdel(8, 6)},
			inSync: true, judged: true,
		},
		{
			// The source deleted a key the target never had: nothing to repair.
			name: "deleted never replicated", p: Pair{Source: []SourceVersion{src(1, 'a', 0), del(2, 5)}},
			inSync: true, judged: true,
		},
		{
			// The target never had a live key: the window starts at the oldest version it missed.
			name: "missing", p: Pair{Source: []SourceVersion{src(1, 'a', 0), src(2, 'b', 10)}},
			judged: true, deadline: at(30), kind: Missing,
		},
		{
			// A delete on the target of a key the source holds is missing, not conflict;
			// it matches no source version, so its window starts when it was seen.
			name: "missing after target delete", p: Pair{Source: []SourceVersion{src(1, 'a', 0)}, Target: tdel(3, 4)},
			judged: true, deadline: at(34), kind: Missing,
		},
		{
			// The source deleted the key at t=20; the target still holds v1.
			name: "orphan", p: Pair{Source: []SourceVersion{src(1, 'a', 0), del(2, 20)}, Target: tgt(5, 'a', 1)},
			judged: true, deadline: at(50), kind: Orphan,
		},
		{
			// Target holds v1; v2 (seen at 10) is the first version it misses.
			name: "lagging by history match", p: Pair{Source: []SourceVersion{src(1, 'a', 0), src(2, 'b', 10), src(3, 'c', 20)}, Target: tgt(5, 'a', 1)},
			judged: true, deadline: at(40), kind: Lagging,
		},
		{
			// Hot key: the target reached v2, so the window follows v3's arrival, not v2's.
			name: "hot key moves the deadline", p: Pair{Source: []SourceVersion{src(1, 'a', 0), src(2, 'b', 10), src(3, 'c', 20)}, Target: tgt(6, 'b', 12)},
			judged: true, deadline: at(50), kind: Lagging,
		},
		{
			// Lineage names v2 and the row matches v2's digest: lagging behind v3.
			name: "lagging by lineage", p: Pair{Source: []SourceVersion{src(1, 'a', 0), src(2, 'b', 10), src(3, 'c', 20)}, Target: tgt(6, 'b', 12), Lineage: v(2)},
			judged: true, deadline: at(50), kind: Lagging,
		},
		{
			// Lineage names v2 but the row is not v2's: no version explains it.
			name: "lineage contradicted is conflict", p: Pair{Source: []SourceVersion{src(1, 'a', 0), src(2, 'b', 10)}, Target: tgt(6, 'x', 12), Lineage: v(2)},
			judged: true, deadline: at(42), kind: Conflict,
		},
		{
			// A row equal to no source version: the window starts when it was seen (later than v1).
			name: "conflict", p: Pair{Source: []SourceVersion{src(1, 'a', 0)}, Target: tgt(5, 'z', 7)},
			judged: true, deadline: at(37), kind: Conflict,
		},
		{
			// The source never showed the key and is not complete: not judged.
			name: "unknown key, incomplete source", p: Pair{Target: tgt(5, 'z', 7)},
		},
		{
			// With a complete source a key it never showed is an orphan on the target.
			name: "unknown key, complete source", p: Pair{SourceComplete: true, Target: tgt(5, 'z', 7)},
			judged: true, deadline: at(37), kind: Orphan,
		},
		{
			// The target claims a version recon has not read from the source: wait from when it was seen.
			name: "lineage ahead of source", p: Pair{Source: []SourceVersion{src(1, 'a', 0)}, Target: tgt(6, 'b', 12), Lineage: v(9)},
			judged: true, deadline: at(42), kind: Conflict,
		},
		{
			// Re-created key: the target's absence matches the delete, so the window follows the re-insert.
			name: "re-created after delete", p: Pair{Source: []SourceVersion{src(1, 'a', 0), del(2, 5), src(3, 'c', 9)}},
			judged: true, deadline: at(39), kind: Missing,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := Assess(tt.p, w)
			if st.InSync != tt.inSync || st.Judged != tt.judged {
				t.Fatalf("Assess: in sync %v judged %v, want %v %v", st.InSync, st.Judged, tt.inSync, tt.judged)
			}
			if tt.inSync || !tt.judged {
				return
			}
			if !st.Deadline.Equal(tt.deadline) {
				t.Errorf("deadline %v, want %v", st.Deadline.Sub(t0), tt.deadline.Sub(t0))
			}
			if got := Classify(tt.p); got.Kind != tt.kind || got.Rationale == "" {
				t.Errorf("Classify = %q (%q), want %q", got.Kind, got.Rationale, tt.kind)
			}
		})
	}
}
