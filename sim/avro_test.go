package sim

import (
	"maps"
	"reflect"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"
	"github.com/twmb/franz-go/pkg/sr/srfake"

	"github.com/recon-dev/recon/compare"
	"github.com/recon-dev/recon/consumer"
	"github.com/recon-dev/recon/repair"
	"github.com/recon-dev/recon/schemas"
)

// avroFixture is an in-memory schema registry with the source's schemas
// registered, and the digester of an avro run against it.
type avroFixture struct {
	fake *srfake.Registry
	reg  *schemas.Registry
	src  *avroSource
	dg   *digester
}

func newAvroFixture(t *testing.T) *avroFixture {
	t.Helper()
	f := &avroFixture{fake: srfake.New()}
	t.Cleanup(f.fake.Close)
	var err error
	if f.src, err = newAvroSource(t.Context(), f.fake.URL()); err != nil {
		t.Fatal(err)
	}
	if f.reg, err = schemas.NewRegistry(f.fake.URL(), schemas.RegistryHTTPClient(registryHTTPClient())); err != nil {
		t.Fatal(err)
	}
	cfg, err := demoConfig("127.0.0.1:9092", f.fake.URL(), t.TempDir(), time.Second, FormatAvro)
	if err != nil {
		t.Fatal(err)
	}
	if f.dg, err = newDigester(cfg, f.reg, formatPair{src: f.src, tgt: flatTarget{}}); err != nil {
		t.Fatal(err)
	}
	return f
}

// TestAvroFormatsAgree is what makes `recon demo --format avro` meaningful:
// the Postgres change as Debezium Avro and the replica's flat JSON row of the
// same data (DATETIME text, decimal strings, a renamed key, "__" metadata)
// decode through recon's own decoders and rules into the same key, row and
// digest; and the Avro source row digests as its Debezium JSON twin does.
func TestAvroFormatsAgree(t *testing.T) {
	f := newAvroFixture(t)
	dg := f.dg
	js := testDigester(t)
	for _, o := range orders {
		ch := Change{Op: 'c', LSN: 24023128, PrevLSN: 24023040, TxID: 771, At: created, Row: o}
		key, err := f.src.key(o.ID)
		if err != nil {
			t.Fatal(err)
		}
		value, err := f.src.value(ch)
		if err != nil {
			t.Fatal(err)
		}
		if key[0] != 0 || value[0] != 0 {
			t.Fatalf("order %d: not the Confluent wire format: key %x, value %x", o.ID, key[:5], value[:5])
		}
		src, err := dg.src.normalize(key, value)
		if err != nil {
			t.Fatalf("order %d: avro source: %v", o.ID, err)
		}
		row := Row{Order: o, SrcLSN: ch.LSN, LoadedAt: created.Add(time.Minute)}
		tgt, err := dg.tgt.normalize(TargetKey(o.ID), FlatTargetValue('c', row, 4711, created.Add(time.Minute)))
		if err != nil {
			t.Fatalf("order %d: flat target: %v", o.ID, err)
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
		j, err := js.src.normalize(SourceKey(o.ID), SourceValue(ch))
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(src.Row, j.Row) || src.Key.String() != j.Key.String() {
			t.Errorf("order %d: the Avro and JSON source records differ\navro %v\njson %v", o.ID, src.Row, j.Row)
		}
	}

	o := orders[1]
	del, err := f.src.value(Change{Op: 'd', LSN: 99, At: created, Row: o})
	if err != nil {
		t.Fatal(err)
	}
	key, _ := f.src.key(o.ID)
	src, err := dg.src.normalize(key, del)
	if err != nil || src.Op != compare.OpDelete || src.Key.String() != "42" || src.Row != nil {
		t.Errorf("avro source delete: %+v, %v", src, err)
	}
	tgt, err := dg.tgt.normalize(TargetKey(o.ID), FlatTargetValue('d', Row{Order: o, SrcLSN: 98}, 500, created))
	if err != nil || tgt.Op != compare.OpDelete || tgt.Key.String() != "42" {
		t.Errorf("flat target delete: %+v, %v", tgt, err)
	}
	if d, err := dg.src.dec.Decode(key, nil, consumer.Meta{}); err != nil || !d.Tombstone {
		t.Errorf("avro tombstone: %+v %v", d, err)
	}
}

// TestAvroRepairRoundTrip: a repair recon publishes in Avro reads, through
// the registry, as the same repair the JSON one is.
func TestAvroRepairRoundTrip(t *testing.T) {
	f := newAvroFixture(t)
	cl, err := sr.NewClient(sr.URLs(f.fake.URL()), sr.HTTPClient(registryHTTPClient()))
	if err != nil {
		t.Fatal(err)
	}
	enc, err := schemas.RegisterOutputs(t.Context(), cl, schemas.OutputTopics{Divergences: "d", Repairs: "r"})
	if err != nil {
		t.Fatal(err)
	}
	events := newAvroEvents(f.reg)
	for _, o := range orders {
		srcRow, err := f.dg.sourceRow(o)
		if err != nil {
			t.Fatal(err)
		}
		after := maps.Clone(srcRow)
		after["order_id"] = after["id"]
		delete(after, "id")
		body, err := repair.Marshal(repair.Repair{
			ID: "r1", Action: repair.ActionUpsert, Kind: "missing", Mode: "auto", SourceVersion: "24023128", CreatedAt: created,
			Key: compare.Key{Fields: []string{"id"}, Values: []compare.Value{srcRow["id"]}}, After: after,
		})
		if err != nil {
			t.Fatal(err)
		}
		wire, err := enc.EncodeValue("r", body)
		if err != nil {
			t.Fatal(err)
		}
		tl := &tail{events: events}
		var ev repairEvent
		if err := tl.decodeEvent(t.Context(), &kgo.Record{Value: wire}, &ev); err != nil {
			t.Fatalf("order %d: %v", o.ID, err)
		}
		row, err := ev.row(created.Add(time.Hour))
		if err != nil {
			t.Fatalf("order %d: %v", o.ID, err)
		}
		if id, err := ev.id(); err != nil || id != o.ID || row.SrcLSN != 24023128 {
			t.Errorf("order %d: id %d (%v), lineage %d", o.ID, id, err, row.SrcLSN)
		}
		if same, err := f.dg.same(&o, &row); err != nil || !same {
			t.Errorf("order %d: the repaired row %+v differs from the source's (%v)", o.ID, row, err)
		}
	}
	if _, err := events.json(t.Context(), []byte(`{"id":"x"}`)); err == nil {
		t.Error("a JSON value read as an Avro event")
	}
}
