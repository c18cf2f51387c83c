package pipeline

import (
	"fmt"
	"reflect"
	"sort"
	"testing"
	"time"

	"github.com/recon-dev/recon/compare"
	"github.com/recon-dev/recon/repair"
)

var created = time.Date(2024, 6, 15, 12, 30, 0, 123456000, time.UTC)

func byKey(evs []outEvent) map[string]outEvent {
	m := make(map[string]outEvent)
	for _, e := range evs {
		m[e.Key+" "+fmt.Sprint(e.Body["event"])] = e
	}
	return m
}

func field(m map[string]any, path ...string) any {
	var cur any = m
	for _, p := range path {
		mm, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = mm[p]
	}
	return cur
}

func TestVerdictsEndToEnd(t *testing.T) {
	h := newHarness(t, time.Second, "auto")
	p, _ := h.start()
	r := func(id int64, amount, status string) row {
		return row{ID: id, Amount: amount, Status: status, Created: created}
	}

	// 1 missing: the target never gets the insert.
	h.source("c", 100, r(1, "12.50", "new"))
	// 2 orphan: the target keeps a row the source deleted.
	h.source("c", 200, r(2, "20.00", "new"))
	h.target("c", 10, 200, r(2, "20.00", "new"))
	h.source("d", 210, r(2, "20.00", "new"))
	// 3 lagging: the target applied v300 but not v310.
	h.source("c", 300, r(3, "30.00", "new"))
	h.target("c", 11, 300, r(3, "30.00", "new"))
	h.source("u", 310, r(3, "30.00", "paid"))
	// 4 conflict: the target holds an amount no source version had.
	h.source("c", 400, r(4, "40.00", "new"))
	h.target("c", 12, 400, r(4, "99.99", "new"))
	// 5 in sync, with harmless noise: duplicates and a replayed old version.
	h.source("c", 500, r(5, "-5.05", "new"))
	h.source("u", 505, r(5, "-5.05", "paid"))
	h.source("c", 500, r(5, "-5.05", "new"))  // redelivered old version
	h.source("u", 505, r(5, "-5.05", "paid")) // duplicate
	h.target("c", 13, 500, r(5, "-5.05", "new"))
	h.target("u", 14, 505, r(5, "-5.05", "paid"))
	h.target("u", 14, 505, r(5, "-5.05", "paid")) // duplicate
	h.target("c", 13, 500, r(5, "-5.05", "new"))  // redelivered old version

	// 6 a delay inside the window: the target follows once recon holds the
	// source change with an open window.
	h.source("c", 600, r(6, "60.00", "new"))
	waitFor(t, 10*time.Second, "window of key 6", func() bool {
		ks, err := p.Store().KeyState("orders", "6")
		return err == nil && ks != nil && ks.Targets["warehouse"] != nil && !ks.Targets["warehouse"].Deadline.IsZero()
	})
	h.target("c", 15, 600, r(6, "60.00", "new"))

	// A marker whose window expires after every other: once its verdict is
	// out, every earlier window has been judged.
	h.source("c", 9900, r(99, "1.00", "new"))

	divs := h.waitOutputs(h.cfg.Outputs.Divergences, 5)
	reps := h.waitOutputs(h.cfg.Outputs.Repairs, 4)
	got := byKey(divs)
	want := map[string]string{
		"orders/warehouse/1 opened":  "missing",
		"orders/warehouse/2 opened":  "orphan",
		"orders/warehouse/3 opened":  "lagging",
		"orders/warehouse/4 opened":  "conflict",
		"orders/warehouse/99 opened": "missing",
	}
	if len(divs) != len(want) {
		t.Fatalf("divergences %v, want exactly %v", kindsOf(divs), want)
	}
	for k, kind := range want {
		e, ok := got[k]
		if !ok || e.Body["kind"] != kind || e.Headers["recon-kind"] != kind {
			t.Errorf("%s: got %v, want kind %s", k, e.Body, kind)
		}
		if e.Headers["recon-dataset"] != "orders" || e.Headers["recon-id"] != e.Body["id"] {
			t.Errorf("%s: headers %v", k, e.Headers)
		}
	}

	// The exact missing divergence and its repair.
	miss := got["orders/warehouse/1 opened"].Body
	if !reflect.DeepEqual(miss["key"], map[string]any{"id": float64(1)}) || miss["target_state"] != nil ||
		field(miss, "source", "version") != "100" || field(miss, "source", "deleted") != false ||
		miss["window_ms"] != float64(1000) || miss["dataset"] != "orders" || miss["target"] != "warehouse" || miss["rationale"] == "" {
		t.Errorf("missing divergence: %v", miss)
	}
	wantFields := []string{"config_hash", "dataset", "detected_at", "event", "id", "key", "kind", "opened_at", "rationale", "rules_version", "source", "target", "target_state", "window_ms"}
	if keys := sortedKeys(miss); !reflect.DeepEqual(keys, wantFields) {
		t.Errorf("divergence fields %v, want %v", keys, wantFields)
	}
	repByKey := byAction(reps)
	if len(reps) != 4 {
		t.Fatalf("repairs %v, want 4 (conflict is held for approval)", kindsOf(reps))
	}
	mr := repByKey["orders/warehouse/1"].Body
	wantAfter := map[string]any{"order_id": float64(1), "amount": "12.50", "status": "new", "created_at": "2024-06-15T12:30:00.123456Z"}
	if mr["action"] != "upsert" || mr["kind"] != "missing" || mr["source_version"] != "100" ||
		mr["divergence_id"] != miss["id"] || mr["expected_digest"] != field(miss, "source", "digest") ||
		mr["previous_digest"] != "" || mr["dry_run"] != false || mr["mode"] != "auto" ||
		!reflect.DeepEqual(mr["after"], wantAfter) {
		t.Errorf("missing repair: %v", mr)
	}
	if id := repair.ID("orders", "warehouse", "1", "100", "upsert", compare.Digest{}.String()); mr["id"] != id {
		t.Errorf("repair id %v, want the deterministic %s", mr["id"], id)
	}
	or := repByKey["orders/warehouse/2"].Body
	if or["action"] != "delete" || or["kind"] != "orphan" || or["after"] != nil || or["previous_digest"] == "" {
		t.Errorf("orphan repair: %v", or)
	}
	lr := repByKey["orders/warehouse/3"].Body
	if lr["action"] != "upsert" || lr["kind"] != "lagging" || lr["source_version"] != "310" || field(lr, "after", "status") != "paid" {
		t.Errorf("lagging repair: %v", lr)
	}
	// What each repair replaces: the lagging target's row is the source's
	// previous one, the orphan's the deleted one.
	if field(lr, "before", "amount") != "30.00" || field(lr, "before", "status") != "new" {
		t.Errorf("lagging repair should carry the row it replaces: %v", lr["before"])
	}
	if field(or, "before", "order_id") != float64(2) {
		t.Errorf("orphan repair should carry the row it deletes: %v", or["before"])
	}
	// The conflicting target's own row, which decoding left to be built on
	// demand, is kept for its (pending) repair to carry and a revert to put back.
	ks, err := p.Store().KeyState("orders", "4")
	if err != nil || ks == nil || ks.Targets["warehouse"] == nil || ks.Targets["warehouse"].Row["amount"].Text != "99.99" {
		t.Errorf("conflicting target row not kept: %+v, %v", ks, err)
	}
	lag := got["orders/warehouse/3 opened"].Body
	if field(lag, "target_state", "reflects") != "300" {
		t.Errorf("lagging divergence should say the target reflects 300: %v", lag)
	}

	// A late fix resolves the conflict and the missing key.
	h.target("u", 20, 400, r(4, "40.00", "new"))
	h.target("c", 21, 100, r(1, "12.50", "new"))
	divs = h.waitOutputs(h.cfg.Outputs.Divergences, 7)
	got = byKey(divs)
	for _, k := range []string{"orders/warehouse/4 resolved", "orders/warehouse/1 resolved"} {
		e, ok := got[k]
		if !ok || e.Body["resolved_at"] == nil || e.Body["id"] != got[k[:len(k)-len("resolved")]+"opened"].Body["id"] {
			t.Errorf("%s: %v", k, e.Body)
		}
	}
}

func byAction(evs []outEvent) map[string]outEvent {
	m := make(map[string]outEvent)
	for _, e := range evs {
		m[e.Key] = e
	}
	return m
}

func sortedKeys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
