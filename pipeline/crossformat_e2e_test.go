package pipeline

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/recon-dev/recon/broker"
	"github.com/recon-dev/recon/config"
)

// The cross-format case of issue 3, end to end: a schema-wrapped Postgres
// source (Decimal bytes with scale, MicroTimestamp, boolean, Uuid, double,
// composite key) against a flat-json MySQL-style target that writes the same
// rows its own way (upper-case column names, a renamed key column, decimals as
// strings or doubles, DATETIME text, ISO with an offset or epoch µs, TINYINT(1)
// or "true", UUIDs upper case or without dashes, numeric strings, a double
// computed with binary noise, binlog positions, a load-time column). Only the
// real differences may come out as verdicts.
const xfConfig = `
kafka: {brokers: [%s], group: recon-test}
state: {dir: %s}
http: {listen: "127.0.0.1:0"}
digest: {key: "test-digest-key-0123456789"}
datasets:
  - name: orders
    key: [tenant_id, id]
    window: 500ms
    source: {name: postgres, topic: %s, format: debezium-json, version: lsn}
    targets:
      - {name: warehouse, topic: %s, format: flat-json, version: position, rename: {Order_ID: id}}
    compare:
      case_insensitive: true
      ignore: [Loaded_At]
      types: {tenant_id: int, id: int, amount: "decimal(2)", created_at: timestamp, active: bool,
              ref: uuid, qty: int, note: string, ratio: float}
      float_tolerance: 0.000001
    repair: {mode: auto, auto_kinds: [missing, lagging, orphan], payload: full}
`

func newCrossFormatHarness(t *testing.T) *harness {
	t.Helper()
	b, err := broker.Start(broker.Options{Partitions: 1, Topics: []string{srcTopic, tgtTopic}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	cfg, err := config.Parse([]byte(fmt.Sprintf(xfConfig, b.Addr(), t.TempDir(), srcTopic, tgtTopic)),
		func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	prod, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(prod.Close)
	h := &harness{t: t, broker: b, cfg: cfg, prod: prod}
	h.readOutputs()
	return h
}

// xfRow is one row of the cross-format dataset, in the source's terms.
type xfRow struct {
	Tenant, ID int64
	Amount     string // "1234.50"
	Created    time.Time
	Active     bool
	Ref        string // lower-case UUID
	Qty        int32
	Note       string
	Ratio      float64
}

const xfValueSchema = `{"type":"struct","optional":true,"name":"pg.public.orders.Value","field":"%s","fields":[
{"type":"int64","optional":false,"field":"tenant_id"},
{"type":"int64","optional":false,"field":"id"},
{"type":"bytes","optional":true,"name":"org.apache.kafka.connect.data.Decimal","version":1,"parameters":{"scale":"2","connect.decimal.precision":"12"},"field":"amount"},
{"type":"int64","optional":true,"name":"io.debezium.time.MicroTimestamp","version":1,"field":"created_at"},
{"type":"boolean","optional":true,"field":"active"},
{"type":"string","optional":true,"name":"io.debezium.data.Uuid","version":1,"field":"ref"},
{"type":"int32","optional":true,"field":"qty"},
{"type":"string","optional":true,"field":"note"},
{"type":"double","optional":true,"field":"ratio"}]}`

func xfEnvelopeSchema() string {
	return `{"type":"struct","optional":false,"name":"pg.public.orders.Envelope","fields":[` +
		fmt.Sprintf(xfValueSchema, "before") + "," + fmt.Sprintf(xfValueSchema, "after") +
		`,{"type":"struct","optional":false,"name":"io.debezium.connector.postgresql.Source","field":"source","fields":[
{"type":"string","optional":false,"field":"connector"},{"type":"int64","optional":false,"field":"ts_ms"},
{"type":"int64","optional":true,"field":"lsn"}]},
{"type":"string","optional":false,"field":"op"},{"type":"int64","optional":true,"field":"ts_ms"}]}`
}

// xfSource produces the Postgres insert of r at lsn, schema-wrapped.
func (h *harness) xfSource(lsn int64, r xfRow) {
	h.t.Helper()
	after := fmt.Sprintf(`{"tenant_id":%d,"id":%d,"amount":"%s","created_at":%d,"active":%t,"ref":"%s","qty":%d,"note":%q,"ratio":%v}`,
		r.Tenant, r.ID, decimalB64(r.Amount, 2), r.Created.UnixMicro(), r.Active, r.Ref, r.Qty, r.Note, r.Ratio)
	now := time.Now().UnixMilli()
	payload := fmt.Sprintf(`{"before":null,"after":%s,"source":{"connector":"postgresql","ts_ms":%d,"lsn":%d},"op":"c","ts_ms":%d}`,
		after, now, lsn, now)
	key := fmt.Sprintf(`{"schema":{"type":"struct","optional":false,"name":"pg.public.orders.Key","fields":[`+
		`{"type":"int64","optional":false,"field":"tenant_id"},{"type":"int64","optional":false,"field":"id"}]},`+
		`"payload":{"tenant_id":%d,"id":%d}}`, r.Tenant, r.ID)
	h.produce(srcTopic, key, `{"schema":`+xfEnvelopeSchema()+`,"payload":`+payload+`}`)
}

// xfTarget produces a flat-json MySQL row at binlog position pos: cols are
// the row's columns exactly as the target writes them (JSON literals).
func (h *harness) xfTarget(pos int64, tenant, id int64, cols string) {
	h.t.Helper()
	value := fmt.Sprintf(`{"TENANT_ID":%d,"ORDER_ID":%d,%s,"LOADED_AT":"%s","__op":"c","__source_file":"mysql-bin.000003","__source_pos":%d,"__source_row":0,"__source_ts_ms":%d,"__deleted":"false"}`,
		tenant, id, cols, time.Now().UTC().Format(time.RFC3339Nano), pos, time.Now().UnixMilli())
	h.produce(tgtTopic, fmt.Sprintf(`{"TENANT_ID":%d,"ORDER_ID":%d}`, tenant, id), value)
}

func TestCrossFormatEndToEnd(t *testing.T) {
	h := newCrossFormatHarness(t)
	p, _ := h.start()
	const ref = "3f2504e0-4f89-11d3-9a0c-0305e82c3301"
	at := time.Date(2024, 6, 15, 12, 30, 0, 123456000, time.UTC)
	base := xfRow{Tenant: 7, Amount: "1234.50", Created: at, Active: true, Ref: ref, Qty: 3, Note: "héllo, wörld", Ratio: 0.3}
	with := func(id int64, f func(*xfRow)) xfRow {
		r := base
		r.ID = id
		if f != nil {
			f(&r)
		}
		return r
	}

	// In sync, each in another encoding of the same values.
	h.xfSource(100, with(1, nil))
	h.xfTarget(1000, 7, 1, `"AMOUNT":"1234.50","Created_At":"2024-06-15 12:30:00.123456","ACTIVE":1,"REF":"3F2504E0-4F89-11D3-9A0C-0305E82C3301","QTY":"3","NOTE":"héllo, wörld","RATIO":0.30000000000000004`)
	h.xfSource(200, with(2, func(r *xfRow) { r.Amount, r.Active, r.Ratio = "-0.05", false, -2.5 }))
	h.xfTarget(1001, 7, 2, `"AMOUNT":-0.05,"CREATED_AT":1718454600123456,"ACTIVE":"false","REF":"3F2504E04F8911D39A0C0305E82C3301","QTY":3,"NOTE":"héllo, wörld","RATIO":"-2.5"`)
	h.xfSource(300, with(0, func(r *xfRow) { r.Tenant, r.Amount = 0, "0.00" }))
	h.xfTarget(1002, 0, 0, `"AMOUNT":0,"CREATED_AT":"2024-06-15T14:30:00.123456+02:00","ACTIVE":"1","REF":"{3f2504e0-4f89-11d3-9a0c-0305e82c3301}","QTY":3.0,"NOTE":"héllo, wörld","RATIO":0.3`)
	h.xfSource(400, with(4, func(r *xfRow) { r.Tenant, r.Amount = -3, "99999.99" }))
	h.xfTarget(1003, -3, 4, `"AMOUNT":"99999.99","CREATED_AT":"2024-06-15T12:30:00.1234560Z","ACTIVE":true,"REF":"3f2504e0-4f89-11d3-9a0c-0305e82c3301","QTY":"+3","NOTE":"héllo, wörld","RATIO":3e-1`)

	// Real differences: a cent, and a column only the target has (schema evolution).
	h.xfSource(500, with(5, nil))
	h.xfTarget(1004, 7, 5, `"AMOUNT":"1234.51","CREATED_AT":"2024-06-15 12:30:00.123456","ACTIVE":1,"REF":"`+ref+`","QTY":3,"NOTE":"héllo, wörld","RATIO":0.3`)
	h.xfSource(600, with(6, nil))
	h.xfTarget(1005, 7, 6, `"AMOUNT":"1234.50","CREATED_AT":"2024-06-15 12:30:00.123456","ACTIVE":1,"REF":"`+ref+`","QTY":3,"NOTE":"héllo, wörld","RATIO":0.3,"DISCOUNT":null`)

	for _, k := range []string{"7,1", "7,2", "0,0", "-3,4"} {
		waitFor(t, 10*time.Second, "key "+k+" in sync", inSync(p, k))
	}
	h.xfSource(9900, with(99, nil)) // marker: judged after every other key
	waitFor(t, 10*time.Second, "the marker's verdict", func() bool {
		for _, d := range h.outputs(h.cfg.Outputs.Divergences) {
			if d.Key == "orders/warehouse/7,99" {
				return true
			}
		}
		return false
	})
	got := map[string]string{}
	for _, d := range h.outputs(h.cfg.Outputs.Divergences) {
		got[d.Key] = fmt.Sprint(d.Body["kind"])
		rationale := fmt.Sprint(d.Body["rationale"])
		switch d.Key {
		case "orders/warehouse/7,5":
			if !strings.HasSuffix(rationale, "; columns differ: amount") {
				t.Errorf("key 7,5 rationale %q: want it to name amount only", rationale)
			}
		case "orders/warehouse/7,6":
			if !strings.HasSuffix(rationale, `; column "discount" only in the target`) {
				t.Errorf("key 7,6 rationale %q: want it to name the target-only column", rationale)
			}
		}
		if key, _ := d.Body["key"].(map[string]any); key == nil || key["tenant_id"] == nil || key["id"] == nil {
			t.Errorf("divergence key %v: want the folded dataset names tenant_id and id", d.Body["key"])
		}
	}
	want := map[string]string{
		"orders/warehouse/7,5":  "conflict",
		"orders/warehouse/7,6":  "conflict",
		"orders/warehouse/7,99": "missing",
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("divergences %v, want exactly %v: an encoding difference was judged a divergence", got, want)
	}
	checkRepairSpelling(t, h)
}

// checkRepairSpelling: the missing marker's repair carries the source row in
// the target's own column names, as its rows spell them (ORDER_ID, not the
// config's Order_ID nor the folded order_id), while its key keeps the
// dataset's folded names.
func checkRepairSpelling(t *testing.T, h *harness) {
	t.Helper()
	var after map[string]any
	waitFor(t, 10*time.Second, "the marker's repair", func() bool {
		for _, r := range h.outputs(h.cfg.Outputs.Repairs) {
			if r.Key == "orders/warehouse/7,99" {
				after, _ = r.Body["after"].(map[string]any)
				return true
			}
		}
		return false
	})
	var names []string
	for c := range after {
		names = append(names, c)
	}
	slices.Sort(names)
	// The first target row spelled Created_At, the later ones CREATED_AT;
	// rows are decoded in parallel, so either may be the last one seen.
	want := fmt.Sprint([]string{"ACTIVE", "AMOUNT", "CREATED_AT", "NOTE", "ORDER_ID", "QTY", "RATIO", "REF", "TENANT_ID"})
	alt := fmt.Sprint([]string{"ACTIVE", "AMOUNT", "Created_At", "NOTE", "ORDER_ID", "QTY", "RATIO", "REF", "TENANT_ID"})
	if got := fmt.Sprint(names); got != want && got != alt {
		t.Errorf("repair after has columns %s, want the target's spelling %s", got, want)
	}
	if after["ORDER_ID"] != float64(99) || after["AMOUNT"] != "1234.50" {
		t.Errorf("repair after %v: want the source's values", after)
	}
}

// SystemRules passes compare.case_insensitive on to the rules recon judges with.
func TestSystemRulesCaseInsensitive(t *testing.T) {
	for _, on := range []bool{false, true} {
		d := config.Dataset{Key: []string{"ID"}, Compare: config.Compare{CaseInsensitive: on}}
		r, err := SystemRules(d, config.System{Name: "t"})
		if err != nil {
			t.Fatal(err)
		}
		k, err := r.Key(map[string]any{"id": 1})
		if on && (err != nil || k.Fields[0] != "id") {
			t.Errorf("case_insensitive: key %v, %v; want field id found", k, err)
		}
		if !on && err == nil {
			t.Errorf("byte for byte, column id is not key field ID: got key %v", k)
		}
	}
}
