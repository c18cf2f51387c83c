package state

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
)

func divRec(id, dataset, key, state string, at time.Time) DivergenceRecord {
	return DivergenceRecord{ID: id, Dataset: dataset, Target: "wh", Key: key, Kind: "missing", State: state,
		OpenedAt: at.Add(-time.Second), DetectedAt: at, Rationale: "r", Event: []byte(`{}`)}
}

// Pages come newest first, filtered, and a cursor continues exactly after
// the last record of its page, however records were written.
func TestDivergencePages(t *testing.T) {
	s := openTest(t, t.TempDir())
	b := s.NewBatch()
	for i := range 7 {
		st := DivergenceOpen
		if i%2 == 0 {
			st = DivergenceResolved
		}
		b.PutDivergence(divRec(fmt.Sprintf("d%d", i), "orders", fmt.Sprint(i), st, t0.Add(time.Duration(i)*time.Minute)))
	}
	mustCommit(t, s, b)
	// Rewriting a record (a resolve) leaves its place in the listing.
	b = s.NewBatch()
	r := divRec("d1", "orders", "1", DivergenceResolved, t0.Add(time.Minute))
	r.ResolvedAt = t0.Add(time.Hour)
	b.PutDivergence(r)
	mustCommit(t, s, b)

	walk := func(limit int, keep func(*DivergenceRecord) bool) string {
		var pages []string
		cursor := ""
		for range 10 {
			recs, next, err := s.DivergencePage(cursor, limit, keep)
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, d := range recs {
				ids = append(ids, d.ID)
			}
			pages = append(pages, strings.Join(ids, ","))
			if next == "" {
				return strings.Join(pages, " | ")
			}
			cursor = next
		}
		t.Fatal("paging does not end")
		return ""
	}
	if got, want := walk(0, nil), "d6,d5,d4,d3,d2,d1,d0"; got != want {
		t.Errorf("all: %s, want %s", got, want)
	}
	if got, want := walk(3, nil), "d6,d5,d4 | d3,d2,d1 | d0"; got != want {
		t.Errorf("pages of 3: %s, want %s", got, want)
	}
	open := func(d *DivergenceRecord) bool { return d.State == DivergenceOpen }
	if got, want := walk(2, open), "d5,d3 | "; got != want {
		t.Errorf("open, pages of 2: %s, want %s (d1 was resolved)", got, want)
	}
	if _, _, err := s.DivergencePage("!!", 1, nil); !errors.Is(err, ErrBadCursor) {
		t.Errorf("bad cursor: %v, want ErrBadCursor", err)
	}
	got, err := s.Divergence("d1")
	if err != nil || got == nil || got.State != DivergenceResolved || !got.ResolvedAt.Equal(t0.Add(time.Hour)) {
		t.Fatalf("Divergence(d1) = %+v, %v", got, err)
	}
}

// KeyRecords finds a key's divergences, repairs and audit records through
// the key index, and nothing of other keys or datasets.
func TestKeyRecords(t *testing.T) {
	s := openTest(t, t.TempDir())
	b := s.NewBatch()
	b.PutDivergence(divRec("d1", "orders", "42", DivergenceOpen, t0))
	b.PutDivergence(divRec("d2", "orders", "43", DivergenceOpen, t0))
	b.PutDivergence(divRec("d3", "users", "42", DivergenceOpen, t0))
	b.PutRepair(RepairRecord{ID: "r1", Dataset: "orders", Key: "42", State: RepairPending, CreatedAt: t0})
	for i, k := range []string{"42", "43", "42", "", "42"} {
		b.AppendAudit(AuditRecord{Time: t0, Actor: "recon", Action: fmt.Sprint("a", i), Dataset: "orders", Key: k})
	}
	mustCommit(t, s, b)
	kr, err := s.KeyRecords("orders", "42", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(kr.Divergences) != 1 || kr.Divergences[0].ID != "d1" || len(kr.Repairs) != 1 || kr.Repairs[0].ID != "r1" {
		t.Fatalf("records %+v", kr)
	}
	var actions []string
	for _, r := range kr.Audit {
		actions = append(actions, r.Action)
	}
	if got := strings.Join(actions, ","); got != "a0,a2,a4" {
		t.Errorf("audit %s, want a0,a2,a4", got)
	}
	if kr, _ := s.KeyRecords("orders", "42", 2); len(kr.Audit) != 2 || kr.Audit[0].Action != "a2" {
		t.Errorf("audit limited to 2: %+v, want the newest two", kr.Audit)
	}
	if v, err := s.VerifyAudit(); err != nil || !v.OK() {
		t.Fatalf("the key index disturbs the chain: %+v, %v", v, err)
	}
}

// A dir written before the indexes existed gets them once at Open.
func TestOpenBuildsIndex(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir)
	b := s.NewBatch()
	b.PutRepair(RepairRecord{ID: "r1", Dataset: "orders", Key: "42", State: RepairPending, CreatedAt: t0})
	b.AppendAudit(AuditRecord{Time: t0, Actor: "recon", Action: "opened", Dataset: "orders", Key: "42"})
	mustCommit(t, s, b)
	// Drop the index and its mark, as a dir from before would be.
	err := s.db.Update(func(txn *badger.Txn) error {
		for _, p := range [][]byte{{prefixList}, {prefixKeyIdx}, metaIndexed} {
			it := txn.NewIterator(badger.IteratorOptions{Prefix: p})
			var keys [][]byte
			for it.Rewind(); it.Valid(); it.Next() {
				keys = append(keys, it.Item().KeyCopy(nil))
			}
			it.Close()
			for _, k := range keys {
				if err := txn.Delete(k); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if recs, _, _ := s.RepairPage("", 0, nil); len(recs) != 0 {
		t.Fatalf("index not dropped: %+v", recs)
	}
	s.Close()
	s = openTest(t, dir)
	recs, _, err := s.RepairPage("", 0, nil)
	if err != nil || len(recs) != 1 {
		t.Fatalf("repairs after reopen: %+v, %v", recs, err)
	}
	if kr, err := s.KeyRecords("orders", "42", 0); err != nil || len(kr.Audit) != 1 || len(kr.Repairs) != 1 {
		t.Fatalf("key records after reopen: %+v, %v", kr, err)
	}
}

func TestVerifyTimersAndGuardStates(t *testing.T) {
	s := openTest(t, t.TempDir())
	b := s.NewBatch()
	b.MoveVerifyTimer("r2", time.Time{}, t0.Add(2*time.Minute))
	b.MoveVerifyTimer("r1", time.Time{}, t0.Add(time.Minute))
	b.MoveVerifyTimer("r3", time.Time{}, t0.Add(3*time.Minute))
	b.PutGuardState("orders", GuardState{Tripped: true, Since: t0, Reason: "storm"})
	mustCommit(t, s, b)
	b = s.NewBatch()
	b.MoveVerifyTimer("r3", t0.Add(3*time.Minute), time.Time{})
	mustCommit(t, s, b)
	due, err := s.DueVerifyTimers(t0.Add(2*time.Minute), 0)
	if err != nil || len(due) != 2 || due[0].RepairID != "r1" || due[1].RepairID != "r2" {
		t.Fatalf("due %+v, %v", due, err)
	}
	if next, ok, err := s.NextVerifyDeadline(); !ok || err != nil || !next.Equal(t0.Add(time.Minute)) {
		t.Fatalf("next %v %v %v", next, ok, err)
	}
	g, err := s.GuardStates()
	if err != nil || len(g) != 1 || !g["orders"].Tripped || g["orders"].Reason != "storm" || !g["orders"].Since.Equal(t0) {
		t.Fatalf("guard states %+v, %v", g, err)
	}
}
