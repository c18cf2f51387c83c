package pipeline

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/linkedin/goavro/v2"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"

	"github.com/recon-dev/recon/broker"
	"github.com/recon-dev/recon/config"
	"github.com/recon-dev/recon/schemas"
)

// The cross-format case with a debezium-avro source: the Postgres rows of
// TestCrossFormatEndToEnd written by Confluent's AvroConverter (writer
// schemas in the registry the embedded broker serves) against the same
// flat-json MySQL-style target. Only the real differences may come out.
const avroInputConfig = `
kafka: {brokers: [%s], group: recon-test}
schema_registry: {url: %s}
state: {dir: %s}
http: {listen: "127.0.0.1:0"}
digest: {key: "test-digest-key-0123456789"}
datasets:
  - name: orders
    key: [tenant_id, id]
    window: 500ms
    source: {name: postgres, topic: %s, format: debezium-avro, version: lsn}
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

// Writer schemas as AvroConverter renders the Connect schemas of xfValueSchema.
const (
	avroInputKeySchema = `{"type":"record","name":"Key","namespace":"pg.public.orders","fields":[{"name":"tenant_id","type":"long"},{"name":"id","type":"long"}],"connect.name":"pg.public.orders.Key"}`
	avroInputValue     = `{"type":"record","name":"Value","fields":[` +
		`{"name":"tenant_id","type":"long"},{"name":"id","type":"long"},` +
		`{"name":"amount","type":["null",{"type":"bytes","scale":2,"precision":12,"connect.version":1,"connect.parameters":{"scale":"2","connect.decimal.precision":"12"},"connect.name":"org.apache.kafka.connect.data.Decimal","logicalType":"decimal"}],"default":null},` +
		`{"name":"created_at","type":["null",{"type":"long","connect.version":1,"connect.name":"io.debezium.time.MicroTimestamp"}],"default":null},` +
		`{"name":"active","type":["null","boolean"],"default":null},` +
		`{"name":"ref","type":["null",{"type":"string","connect.version":1,"connect.name":"io.debezium.data.Uuid"}],"default":null},` +
		`{"name":"qty","type":["null","int"],"default":null},{"name":"note","type":["null","string"],"default":null},` +
		`{"name":"ratio","type":["null","double"],"default":null}],"connect.name":"pg.public.orders.Value"}`
	avroInputEnvelopeSchema = `{"type":"record","name":"Envelope","namespace":"pg.public.orders","fields":[` +
		`{"name":"before","type":["null",` + avroInputValue + `],"default":null},{"name":"after","type":["null","Value"],"default":null},` +
		`{"name":"source","type":{"type":"record","name":"Source","namespace":"io.debezium.connector.postgresql","fields":[` +
		`{"name":"connector","type":"string"},{"name":"ts_ms","type":"long"},{"name":"lsn","type":["null","long"],"default":null}],` +
		`"connect.name":"io.debezium.connector.postgresql.Source"}},` +
		`{"name":"op","type":"string"},{"name":"ts_ms","type":["null","long"],"default":null}],"connect.name":"pg.public.orders.Envelope"}`
)

// avroSource writes source records the way AvroConverter does: schemas
// registered under the topic-name strategy, records in the wire format.
type avroSource struct {
	keyID, valueID int
	key, value     *goavro.Codec
}

func newAvroSource(t *testing.T, registryURL string) *avroSource {
	t.Helper()
	cl, err := sr.NewClient(sr.URLs(registryURL), sr.HTTPClient(&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}))
	if err != nil {
		t.Fatal(err)
	}
	s := &avroSource{}
	for _, reg := range []struct {
		subject, schema string
		id              *int
		codec           **goavro.Codec
	}{{srcTopic + "-key", avroInputKeySchema, &s.keyID, &s.key}, {srcTopic + "-value", avroInputEnvelopeSchema, &s.valueID, &s.value}} {
		ss, err := cl.CreateSchema(t.Context(), reg.subject, sr.Schema{Schema: reg.schema})
		if err != nil {
			t.Fatalf("registering %s: %v", reg.subject, err)
		}
		*reg.id = ss.ID
		if *reg.codec, err = goavro.NewCodec(reg.schema); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

func avroInputWire(t *testing.T, c *goavro.Codec, id int, native any) string {
	t.Helper()
	b, err := c.BinaryFromNative(binary.BigEndian.AppendUint32([]byte{0}, uint32(id)), native)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// avroSourceRow produces the Postgres insert of r at lsn in Avro.
func (h *harness) avroSourceRow(s *avroSource, lsn int64, r xfRow) {
	h.t.Helper()
	amount, ok := new(big.Rat).SetString(r.Amount)
	if !ok {
		h.t.Fatalf("bad amount %q", r.Amount)
	}
	after := map[string]any{"tenant_id": r.Tenant, "id": r.ID,
		"amount":     goavro.Union("bytes.decimal", amount),
		"created_at": goavro.Union("long", r.Created.UnixMicro()), "active": goavro.Union("boolean", r.Active),
		"ref": goavro.Union("string", r.Ref), "qty": goavro.Union("int", r.Qty), "note": goavro.Union("string", r.Note),
		"ratio": goavro.Union("double", r.Ratio)}
	now := time.Now().UnixMilli()
	value := map[string]any{"before": nil, "after": goavro.Union("pg.public.orders.Value", after),
		"source": map[string]any{"connector": "postgresql", "ts_ms": now, "lsn": goavro.Union("long", lsn)},
		"op":     "c", "ts_ms": goavro.Union("long", now)}
	h.produce(srcTopic, avroInputWire(h.t, s.key, s.keyID, map[string]any{"tenant_id": r.Tenant, "id": r.ID}),
		avroInputWire(h.t, s.value, s.valueID, value))
}

func TestAvroSourceEndToEnd(t *testing.T) {
	b, err := broker.Start(broker.Options{Partitions: 1, Topics: []string{srcTopic, tgtTopic}, SchemaRegistry: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	src := newAvroSource(t, b.SchemaRegistryURL())
	cfg, err := config.Parse([]byte(fmt.Sprintf(avroInputConfig, b.Addr(), b.SchemaRegistryURL(), t.TempDir(), srcTopic, tgtTopic)),
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
	h.avroSourceRow(src, 100, with(1, nil))
	h.xfTarget(1000, 7, 1, `"AMOUNT":"1234.50","Created_At":"2024-06-15 12:30:00.123456","ACTIVE":1,"REF":"3F2504E0-4F89-11D3-9A0C-0305E82C3301","QTY":"3","NOTE":"héllo, wörld","RATIO":0.30000000000000004`)
	h.avroSourceRow(src, 200, with(2, func(r *xfRow) { r.Amount, r.Active, r.Ratio = "-0.05", false, -2.5 }))
	h.xfTarget(1001, 7, 2, `"AMOUNT":-0.05,"CREATED_AT":1718454600123456,"ACTIVE":"false","REF":"3F2504E04F8911D39A0C0305E82C3301","QTY":3,"NOTE":"héllo, wörld","RATIO":"-2.5"`)
	h.avroSourceRow(src, 300, with(0, func(r *xfRow) { r.Tenant, r.Amount = -3, "0.00" }))
	h.xfTarget(1002, -3, 0, `"AMOUNT":0,"CREATED_AT":"2024-06-15T14:30:00.123456+02:00","ACTIVE":"1","REF":"{3f2504e0-4f89-11d3-9a0c-0305e82c3301}","QTY":3.0,"NOTE":"héllo, wörld","RATIO":0.3`)
	// A real difference: a cent.
	h.avroSourceRow(src, 400, with(4, nil))
	h.xfTarget(1003, 7, 4, `"AMOUNT":"1234.51","CREATED_AT":"2024-06-15 12:30:00.123456","ACTIVE":1,"REF":"`+ref+`","QTY":3,"NOTE":"héllo, wörld","RATIO":0.3`)

	for _, k := range []string{"7,1", "7,2", "-3,0"} {
		waitFor(t, 10*time.Second, "key "+k+" in sync", inSync(p, k))
	}
	h.avroSourceRow(src, 9900, with(99, nil)) // marker: judged after every other key
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
	}
	want := map[string]string{"orders/warehouse/7,4": "conflict", "orders/warehouse/7,99": "missing"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("divergences %v, want exactly %v: an encoding difference was judged a divergence", got, want)
	}
	if dlq := h.outputs(h.cfg.Outputs.DLQ); len(dlq) != 0 {
		t.Fatalf("%d records in the DLQ, want none: %v", len(dlq), dlq[0].Headers)
	}
}

// With an Avro input and no registry answering, recon does not start, and
// says why in one line.
func TestAvroInputRegistryUnreachable(t *testing.T) {
	b, err := broker.Start(broker.Options{Partitions: 1, Topics: []string{srcTopic, tgtTopic}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + ln.Addr().String()
	ln.Close() // nothing listens there any more
	cfg, err := config.Parse([]byte(fmt.Sprintf(avroInputConfig, b.Addr(), closed, t.TempDir(), srcTopic, tgtTopic)),
		func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	p, err := New(ctx, cfg, Options{})
	if err == nil {
		p.Close()
		t.Fatal("New started with the schema registry unreachable")
	}
	if msg := err.Error(); !errors.Is(err, schemas.ErrRegistryUnavailable) || strings.Contains(msg, "\n") ||
		!strings.HasPrefix(msg, "schema registry unreachable at "+closed) {
		t.Fatalf("error %q: want one line naming the unreachable registry", msg)
	}
}
