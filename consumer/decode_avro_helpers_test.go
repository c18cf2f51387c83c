package consumer

import (
	"encoding/binary"
	"fmt"
	"strings"
	"testing"

	"github.com/linkedin/goavro/v2"
	"github.com/twmb/franz-go/pkg/sr"
	"github.com/twmb/franz-go/pkg/sr/srfake"

	"github.com/recon-dev/recon/schemas"
)

// Writer schemas shaped like Confluent's AvroConverter output for Debezium
// (cdc-formats.md §1-§2): Connect names as "connect.name", optional columns as
// ["null", T] unions, Connect's Decimal/Date/Time/Timestamp with an Avro
// logicalType too, Debezium's own types as plain int, long, string or record.

// Avro column types.
const (
	avLong       = `"long"`
	avInt        = `"int"`
	avString     = `"string"`
	avDecimal2   = `{"type":"bytes","scale":2,"precision":10,"connect.version":1,"connect.parameters":{"scale":"2","connect.decimal.precision":"10"},"connect.name":"org.apache.kafka.connect.data.Decimal","logicalType":"decimal"}`
	avVarDecimal = `{"type":"record","name":"VariableScaleDecimal","namespace":"io.debezium.data","fields":[{"name":"scale","type":"int"},{"name":"value","type":"bytes"}],"connect.doc":"Variable scaled decimal","connect.version":1,"connect.name":"io.debezium.data.VariableScaleDecimal"}`
	avMicroTS    = `{"type":"long","connect.version":1,"connect.name":"io.debezium.time.MicroTimestamp"}`
)

// avCol is an Avro field; optional ones are ["null", T] with default null.
func avCol(name, typ string, optional bool) string {
	if optional {
		return `{"name":"` + name + `","type":["null",` + typ + `],"default":null}`
	}
	return `{"name":"` + name + `","type":` + typ + `}`
}

// avConnect is a Debezium or Connect logical type on a primitive.
func avConnect(prim, connectName string) string {
	return `{"type":"` + prim + `","connect.version":1,"connect.name":"` + connectName + `"}`
}

const pgSourceSchema = `{"type":"record","name":"Source","namespace":"io.debezium.connector.postgresql","fields":[` +
	`{"name":"version","type":"string"},{"name":"connector","type":"string"},{"name":"name","type":"string"},` +
	`{"name":"ts_ms","type":"long"},` +
	`{"name":"snapshot","type":[{"type":"string","connect.version":1,"connect.parameters":{"allowed":"true,first,first_in_data_collection,last_in_data_collection,last,false,incremental"},"connect.default":"false","connect.name":"io.debezium.data.Enum"},"null"],"default":"false"},` +
	`{"name":"db","type":"string"},{"name":"sequence","type":["null","string"],"default":null},` +
	`{"name":"schema","type":"string"},{"name":"table","type":"string"},` +
	`{"name":"txId","type":["null","long"],"default":null},{"name":"lsn","type":["null","long"],"default":null},` +
	`{"name":"xmin","type":["null","long"],"default":null}],"connect.name":"io.debezium.connector.postgresql.Source"}`

const mysqlSourceSchema = `{"type":"record","name":"Source","namespace":"io.debezium.connector.mysql","fields":[` +
	`{"name":"version","type":"string"},{"name":"connector","type":"string"},{"name":"name","type":"string"},` +
	`{"name":"ts_ms","type":"long"},{"name":"db","type":"string"},{"name":"table","type":["null","string"],"default":null},` +
	`{"name":"server_id","type":"long"},{"name":"gtid","type":["null","string"],"default":null},` +
	`{"name":"file","type":"string"},{"name":"pos","type":"long"},{"name":"row","type":"int"},` +
	`{"name":"thread","type":["null","long"],"default":null}],"connect.name":"io.debezium.connector.mysql.Source"}`

// envelopeAvro is a Debezium envelope in namespace ns (the topic) whose rows
// have the fields cols; source is pgSourceSchema or mysqlSourceSchema.
func envelopeAvro(ns, source string, cols ...string) string {
	return `{"type":"record","name":"Envelope","namespace":"` + ns + `","fields":[` +
		`{"name":"before","type":["null",{"type":"record","name":"Value","fields":[` + strings.Join(cols, ",") +
		`],"connect.name":"` + ns + `.Value"}],"default":null},` +
		`{"name":"after","type":["null","Value"],"default":null},` +
		`{"name":"source","type":` + source + `},` +
		`{"name":"op","type":"string"},{"name":"ts_ms","type":["null","long"],"default":null},` +
		`{"name":"transaction","type":["null",{"type":"record","name":"block","namespace":"event","fields":[` +
		`{"name":"id","type":"string"},{"name":"total_order","type":"long"},{"name":"data_collection_order","type":"long"}],` +
		`"connect.version":1,"connect.name":"event.block"}],"default":null}],` +
		`"connect.version":2,"connect.name":"` + ns + `.Envelope"}`
}

// flatAvro is the unwrap SMT's row record with add.fields metadata.
func flatAvroSchema(ns string, cols ...string) string {
	return `{"type":"record","name":"Value","namespace":"` + ns + `","fields":[` + strings.Join(cols, ",") +
		`],"connect.name":"` + ns + `.Value"}`
}

// Columns of the orders test table, version 1 and version 2 (a nullable
// coupon column added, customer_id widened from int to long).
var (
	ordersV1 = []string{avCol("id", avLong, false), avCol("customer_id", avInt, true), avCol("status", avString, false),
		avCol("amount", avDecimal2, true), avCol("updated_at", avMicroTS, true)}
	ordersV2 = []string{avCol("id", avLong, false), avCol("customer_id", avLong, true), avCol("status", avString, false),
		avCol("amount", avDecimal2, true), avCol("updated_at", avMicroTS, true), avCol("coupon", avString, true)}
	flatMeta = []string{avCol("__op", avString, true), avCol("__lsn", avLong, true), avCol("__source_ts_ms", avLong, true),
		avCol("__deleted", avString, true), avCol("__source_file", avString, true), avCol("__source_pos", avLong, true),
		avCol("__source_row", avInt, true)}
)

// Schema ids of the test registry.
const (
	idKey        = 1  // pg.public.orders.Key {id}
	idEnvV1      = 2  // orders envelope, version 1
	idEnvV2      = 3  // orders envelope, version 2
	idFlatV1     = 4  // orders unwrapped, version 1
	idFlatV2     = 5  // orders unwrapped, version 2
	idLogical    = 6  // an envelope with every logical type (see logicalCases)
	idComposite  = 7  // a composite key {tenant_id, id}
	idMySQL      = 8  // a MySQL envelope (file, pos, row)
	idKeyString  = 9  // a primitive string key schema
	idProtobuf   = 10 // not Avro
	idReferences = 11 // Avro with references
	idList       = 12 // a recursive linked list
	idNulls      = 13 // a record of an array of nulls
	idEnumFixed  = 14 // a record with an Avro enum and fixed
	idUnknown    = 99 // not in the registry
)

var avroTestSchemas = map[int]string{
	idKey:       `{"type":"record","name":"Key","namespace":"pg.public.orders","fields":[{"name":"id","type":"long"}],"connect.name":"pg.public.orders.Key"}`,
	idEnvV1:     envelopeAvro("pg.public.orders", pgSourceSchema, ordersV1...),
	idEnvV2:     envelopeAvro("pg.public.orders", pgSourceSchema, ordersV2...),
	idFlatV1:    flatAvroSchema("pg.public.orders", append(append([]string{}, ordersV1...), flatMeta...)...),
	idFlatV2:    flatAvroSchema("pg.public.orders", append(append([]string{}, ordersV2...), flatMeta...)...),
	idLogical:   envelopeAvro("pg.public.types", pgSourceSchema, logicalColumns()...),
	idComposite: `{"type":"record","name":"Key","namespace":"pg.public.lines","fields":[{"name":"tenant_id","type":"string"},{"name":"id","type":"long"}],"connect.name":"pg.public.lines.Key"}`,
	idMySQL:     envelopeAvro("my.shop.orders", mysqlSourceSchema, ordersV1...),
	idKeyString: `"string"`,
	idList:      `{"type":"record","name":"Node","fields":[{"name":"next","type":["null","Node"]}]}`,
	idNulls:     `{"type":"record","name":"Nulls","fields":[{"name":"op","type":"string"},{"name":"n","type":{"type":"array","items":"null"}}]}`,
	idEnumFixed: envelopeAvro("pg.public.odd", pgSourceSchema, avCol("id", avLong, false),
		avCol("mood", `{"type":"enum","name":"Mood","symbols":["happy","sad"]}`, true),
		avCol("hash", `{"type":"fixed","name":"Hash","size":2}`, true)),
}

// avroFixture is srfake with the test schemas at their ids, a registry client
// of it, and codecs to write test records.
type avroFixture struct {
	fake   *srfake.Registry
	reg    *schemas.Registry
	codecs map[int]*goavro.Codec
}

func newAvroFixture(tb testing.TB) *avroFixture {
	tb.Helper()
	f := &avroFixture{fake: srfake.New(), codecs: map[int]*goavro.Codec{}}
	tb.Cleanup(f.fake.Close)
	for id, text := range avroTestSchemas {
		f.fake.SeedSchema(fmt.Sprintf("subject-%d", id), 1, id, sr.Schema{Schema: text})
		c, err := goavro.NewCodec(text)
		if err != nil {
			tb.Fatalf("schema %d: %v", id, err)
		}
		f.codecs[id] = c
	}
	f.fake.SeedSchema("protobuf", 1, idProtobuf, sr.Schema{Schema: `syntax = "proto3"; message K { int64 id = 1; }`, Type: sr.TypeProtobuf})
	f.fake.SeedSchema("base", 1, 100, sr.Schema{Schema: `{"type":"record","name":"B","fields":[]}`})
	f.fake.SeedSchema("refs", 1, idReferences, sr.Schema{
		Schema:     `{"type":"record","name":"A","fields":[{"name":"b","type":"B"}]}`,
		References: []sr.SchemaReference{{Name: "B", Subject: "base", Version: 1}},
	})
	reg, err := schemas.NewRegistry(f.fake.URL())
	if err != nil {
		tb.Fatal(err)
	}
	f.reg = reg
	return f
}

// encode writes native with schema id in the Confluent wire format.
func (f *avroFixture) encode(tb testing.TB, id int, native any) []byte {
	tb.Helper()
	b := binary.BigEndian.AppendUint32([]byte{0}, uint32(id))
	b, err := f.codecs[id].BinaryFromNative(b, native)
	if err != nil {
		tb.Fatalf("encoding with schema %d: %v", id, err)
	}
	return b
}

// wire frames raw Avro bytes with a schema id.
func wire(id int, avro ...byte) []byte {
	return append(binary.BigEndian.AppendUint32([]byte{0}, uint32(id)), avro...)
}

// pgSourceAvro is the source block of pgEvent: LSN 24023128, committed
// 2024-06-15T12:30:00.123Z; lsn is nil for an event without one.
func pgSourceAvro(lsn any) map[string]any {
	return map[string]any{"version": "2.7.0.Final", "connector": "postgresql", "name": "pg", "ts_ms": int64(1718454600123),
		"snapshot": goavro.Union("string", "false"), "db": "shop", "sequence": nil, "schema": "public", "table": "orders",
		"txId": goavro.Union("long", int64(771)), "lsn": lsn, "xmin": nil}
}

var pgLSN = goavro.Union("long", int64(24023128))

// envelopeNative is an envelope of op with before/after rows of the record
// type valueName (nil for null).
func envelopeNative(valueName, op string, before, after map[string]any, source map[string]any) map[string]any {
	wrapRow := func(r map[string]any) any {
		if r == nil {
			return nil
		}
		return goavro.Union(valueName, r)
	}
	return map[string]any{"before": wrapRow(before), "after": wrapRow(after), "source": source, "op": op,
		"ts_ms": goavro.Union("long", int64(1718454600456)), "transaction": nil}
}

// orderV1 is a version 1 orders row: id 42, customer 7, status, 12.50.
func orderV1(status string) map[string]any {
	return map[string]any{"id": int64(42), "customer_id": goavro.Union("int", int32(7)), "status": status,
		"amount": goavro.Union("bytes.decimal", ratOf(1250, 100)), "updated_at": nil}
}

// flatOrder is a flat version 1 row with metadata md (names without "__").
func flatOrder(status string, md map[string]any) map[string]any {
	row := orderV1(status)
	for _, name := range []string{"op", "lsn", "source_ts_ms", "deleted", "source_file", "source_pos", "source_row"} {
		row["__"+name] = md[name]
	}
	return row
}
