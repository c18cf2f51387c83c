package sim

import (
	"encoding/json"
	"maps"
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/recon-dev/recon/compare"
	"github.com/recon-dev/recon/consumer"
	"github.com/recon-dev/recon/repair"
)

func testDigester(t *testing.T) *digester {
	t.Helper()
	cfg, err := demoConfig("127.0.0.1:9092", "", t.TempDir(), time.Second, FormatJSON)
	if err != nil {
		t.Fatal(err)
	}
	dg, err := newDigester(cfg, nil, jsonFormats)
	if err != nil {
		t.Fatal(err)
	}
	return dg
}

var created = time.Date(2024, 6, 15, 12, 30, 0, 123456000, time.UTC)

// orders covers what could tell the two formats apart: a scale-2 decimal
// whose unscaled bytes set the sign bit, a whole amount, a null and a
// non-ASCII note, microseconds with trailing zeros.
var orders = []Order{
	{ID: 1, Customer: "ada", Amount: 123450, Status: "new", Quantity: 1, CreatedAt: created, UpdatedAt: created, Note: nil},
	{ID: 42, Customer: "zoë", Amount: 200, Status: "paid", Quantity: 9, CreatedAt: created.Add(-time.Hour), UpdatedAt: created, Note: ptr("fragile, ça va")},
	{ID: 9007199254740993, Customer: "ken", Amount: 99999, Status: "shipped", Quantity: 3, CreatedAt: time.Date(2024, 1, 1, 0, 0, 0, 100000, time.UTC), UpdatedAt: created, Note: ptr("")},
}

// TestFormatsAgree is what makes the demo meaningful: the Postgres record of
// a row and the replica's record of the same data decode, through recon's own
// decoder and rules, into the same key, row and digest.
func TestFormatsAgree(t *testing.T) {
	dg := testDigester(t)
	for _, o := range orders {
		ch := Change{Op: 'c', LSN: 24023128, PrevLSN: 24023040, TxID: 771, At: created, Row: o}
		src, err := dg.src.normalize(SourceKey(o.ID), SourceValue(ch))
		if err != nil {
			t.Fatalf("order %d: source: %v", o.ID, err)
		}
		row := Row{Order: o, SrcLSN: ch.LSN, LoadedAt: created.Add(time.Minute)}
		tgt, err := dg.tgt.normalize(TargetKey(o.ID), TargetValue('c', row, 4711, created.Add(time.Minute)))
		if err != nil {
			t.Fatalf("order %d: target: %v", o.ID, err)
		}
		if src.Key.String() != tgt.Key.String() {
			t.Errorf("order %d: keys %q and %q differ", o.ID, src.Key, tgt.Key)
		}
		if !reflect.DeepEqual(src.Row, tgt.Row) {
			t.Errorf("order %d: rows differ\nsource %v\ntarget %v", o.ID, src.Row, tgt.Row)
		}
		if dg.hasher.RowDigest(src.Row) != dg.hasher.RowDigest(tgt.Row) {
			t.Errorf("order %d: digests differ", o.ID)
		}
		if src.Version != (compare.Version{A: 24023128}) {
			t.Errorf("order %d: source version %v, want the lsn", o.ID, src.Version)
		}
		if tgt.Version != (compare.Version{A: 1, B: 4711}) || tgt.Lineage != (compare.Version{A: 24023128}) {
			t.Errorf("order %d: target version %v lineage %v, want binlog 1:4711 and the source lsn", o.ID, tgt.Version, tgt.Lineage)
		}
		for _, col := range []string{"updated_at", "loaded_at", "_src_lsn", "order_id"} {
			if _, ok := tgt.Row[col]; ok {
				t.Errorf("order %d: column %s should be ignored or renamed", o.ID, col)
			}
		}
	}
	// A change in any compared column changes the digest.
	a, _ := dg.sourceRow(orders[0])
	changed := orders[0]
	changed.Amount++
	b, _ := dg.sourceRow(changed)
	if dg.hasher.RowDigest(a) == dg.hasher.RowDigest(b) {
		t.Error("an amount one cent apart has the same digest")
	}
}

func TestDeletesDecode(t *testing.T) {
	dg := testDigester(t)
	o := orders[1]
	src, err := dg.src.normalize(SourceKey(o.ID), SourceValue(Change{Op: 'd', LSN: 99, At: created, Row: o}))
	if err != nil || src.Op != compare.OpDelete || src.Key.String() != "42" || src.Row != nil {
		t.Errorf("source delete: %+v, %v", src, err)
	}
	tgt, err := dg.tgt.normalize(TargetKey(o.ID), TargetValue('d', Row{Order: o, SrcLSN: 98}, 500, created))
	if err != nil || tgt.Op != compare.OpDelete || tgt.Key.String() != "42" {
		t.Errorf("target delete: %+v, %v", tgt, err)
	}
	for _, tomb := range [][]byte{SourceKey(o.ID), TargetKey(o.ID)} {
		d, err := dg.src.dec.Decode(tomb, nil, consumer.Meta{})
		if err != nil || !d.Tombstone {
			t.Errorf("tombstone of %s: %+v %v", tomb, d, err)
		}
	}
}

// TestDecimalBytes pins the Connect Decimal encoding to the worked examples
// of the CDC formats reference (§2).
func TestDecimalBytes(t *testing.T) {
	for cents, want := range map[int64]string{123450: "AeI6", -123450: "/h3G", 0: "AA==", 12800: "MgA=", -1: "/w=="} {
		if got := decimalBytes(cents); got != want {
			t.Errorf("decimalBytes(%d) = %s, want %s", cents, got, want)
		}
	}
	for s, want := range map[string]int64{"12.50": 1250, "12.5": 1250, "-0.01": -1, "7": 700} {
		if got, err := parseAmount(s); err != nil || got != want {
			t.Errorf("parseAmount(%q) = %d, %v", s, got, err)
		}
	}
	for cents, want := range map[int64]string{1250: "12.50", -1: "-0.01", 700: "7.00", 5: "0.05"} {
		if got := amountText(cents); got != want {
			t.Errorf("amountText(%d) = %s, want %s", cents, got, want)
		}
	}
	if _, err := parseAmount("1.005"); err == nil {
		t.Error("parseAmount accepted a third fraction digit")
	}
}

// TestRepairPayloadRoundTrip renders a repair the way recon does (its own
// types, the source row in the target's column names) and checks that the
// repair consumer's reading of it is the source row again.
func TestRepairPayloadRoundTrip(t *testing.T) {
	dg := testDigester(t)
	for _, o := range orders {
		srcRow, err := dg.sourceRow(o)
		if err != nil {
			t.Fatal(err)
		}
		after := maps.Clone(srcRow)
		after["order_id"] = after["id"]
		delete(after, "id")
		body, err := repair.Marshal(repair.Repair{
			ID: "r1", Action: repair.ActionUpsert, Kind: "missing", SourceVersion: "24023128",
			Key: compare.Key{Fields: []string{"id"}, Values: []compare.Value{srcRow["id"]}}, After: after,
		})
		if err != nil {
			t.Fatal(err)
		}
		var ev repairEvent
		if err := decodeJSON(body, &ev); err != nil {
			t.Fatal(err)
		}
		now := created.Add(time.Hour)
		row, err := ev.row(now)
		if err != nil {
			t.Fatalf("order %d: %v", o.ID, err)
		}
		if id, err := ev.id(); err != nil || id != o.ID || row.SrcLSN != 24023128 {
			t.Errorf("order %d: id %d (%v), lineage %d", o.ID, id, err, row.SrcLSN)
		}
		if same, err := dg.same(&o, &row); err != nil || !same {
			t.Errorf("order %d: the repaired row %+v differs from the source's (%v)", o.ID, row, err)
		}
	}
}

func TestReplicaRepairPrecondition(t *testing.T) {
	dg := testDigester(t)
	var out []record
	r := newReplica(TargetTopic, debeziumTarget{}, func(rec record) { out = append(out, rec) })
	o := orders[0]
	r.copyChange(Change{Op: 'c', LSN: 100, Row: o}, 0, noise{}, created)
	cur, _ := r.Row(o.ID)
	digest, err := dg.targetDigest(cur)
	if err != nil {
		t.Fatal(err)
	}
	del := repairEvent{ID: "d", Action: "delete", Kind: "orphan", Key: map[string]any{"id": jsonNumber(o.ID)}}

	del.PreviousDigest = "00000000000000000000000000000000"
	if got, err := r.applyRepair(del, dg.targetDigest, created); err != nil || got != repairSkipped {
		t.Fatalf("a repair whose row changed since: %v %v, want skipped", got, err)
	}
	del.PreviousDigest = digest
	if got, err := r.applyRepair(del, dg.targetDigest, created); err != nil || got != repairApplied {
		t.Fatalf("a repair on the row recon saw: %v %v, want applied", got, err)
	}
	if _, live := r.Row(o.ID); live {
		t.Error("the delete was not applied")
	}
	// c, then d and its tombstone.
	if len(out) != 3 || out[2].Value != nil || out[1].Value == nil {
		t.Errorf("records %d, want the copy, the delete and a tombstone", len(out))
	}
}

// TestWorkload: a seed names a run; a faulted key never changes again; every
// update changes a compared column.
func TestWorkload(t *testing.T) {
	dg := testDigester(t)
	run := func() ([]step, *workload) {
		w := newWorkload(3, 200, time.Second, Faults{Missing: 0.05, Lagging: 0.05, Conflict: 0.05, Orphan: 0.05}, 0.1, true)
		now := created
		var steps []step
		for range 3000 {
			now = now.Add(5 * time.Millisecond)
			s, ok := w.next(now)
			if !ok {
				break
			}
			steps = append(steps, s)
		}
		return steps, w
	}
	a, w := run()
	b, _ := run()
	if !reflect.DeepEqual(a, b) {
		t.Fatal("the same seed made different runs")
	}
	frozen := make(map[int64]bool)
	prev := make(map[int64]Order)
	var lsn uint64
	for _, s := range a {
		id := s.change.Row.ID
		if frozen[id] {
			t.Fatalf("key %d changed after its fault", id)
		}
		if s.change.LSN <= lsn {
			t.Fatalf("lsn %d after %d", s.change.LSN, lsn)
		}
		lsn = s.change.LSN
		if s.change.Op == 'u' {
			x, _ := dg.sourceRow(prev[id])
			y, _ := dg.sourceRow(s.change.Row)
			if dg.hasher.RowDigest(x) == dg.hasher.RowDigest(y) {
				t.Fatalf("update of key %d changed no compared column", id)
			}
		}
		if s.delay < 0 || s.delay > time.Second*6/10 {
			t.Fatalf("delay %s outside the window", s.delay)
		}
		prev[id] = s.change.Row
		if s.fault != "" {
			frozen[id] = true
		}
	}
	for _, k := range Kinds {
		if w.injected[k] == 0 {
			t.Errorf("no %s fault injected", k)
		}
	}
	if len(w.expected) != len(frozen) {
		t.Errorf("%d expected verdicts for %d faulted keys", len(w.expected), len(frozen))
	}
}

func TestPercentile(t *testing.T) {
	ds := []time.Duration{5, 1, 4, 2, 3}
	if p := percentile(ds, 50); p != 3 {
		t.Errorf("p50 = %d", p)
	}
	if p := percentile(ds, 99); p != 5 {
		t.Errorf("p99 = %d", p)
	}
	if p := percentile(nil, 50); p != 0 {
		t.Errorf("p50 of nothing = %d", p)
	}
}

func jsonNumber(n int64) json.Number { return json.Number(strconv.FormatInt(n, 10)) }
