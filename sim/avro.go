package sim

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/big"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/linkedin/goavro/v2"
	"github.com/twmb/franz-go/pkg/sr"

	"github.com/recon-dev/recon/schemas"
)

// The source's records in Avro: Debezium's Postgres connector with
// Confluent's AvroConverter. The writer schemas are what AvroConverter makes
// of the Connect schemas in source.go (cdc-formats.md §2): Connect names as
// "connect.name", optional fields as ["null", T] unions with a null default,
// Decimal with an Avro decimal logicalType, Debezium's MicroTimestamp a plain
// long. They are registered under the topic-name strategy, <topic>-key and
// <topic>-value, as the converter does with auto.register.schemas.
const (
	pgKeyAvsc = `{"type":"record","name":"Key","namespace":"pg.public.orders","fields":[{"name":"id","type":"long"}],` +
		`"connect.name":"pg.public.orders.Key"}`
	avroValueName = "pg.public.orders.Value"
)

var pgValueAvsc = func() string {
	opt := func(name, typ string) string {
		return `{"name":"` + name + `","type":["null",` + typ + `],"default":null}`
	}
	microTS := `{"type":"long","connect.version":1,"connect.name":"io.debezium.time.MicroTimestamp"}`
	row := `{"type":"record","name":"Value","fields":[` + strings.Join([]string{
		`{"name":"id","type":"long"}`,
		opt("customer", `"string"`),
		opt("amount", `{"type":"bytes","scale":2,"precision":10,"connect.version":1,`+
			`"connect.parameters":{"scale":"2","connect.decimal.precision":"10"},`+
			`"connect.name":"org.apache.kafka.connect.data.Decimal","logicalType":"decimal"}`),
		opt("status", `"string"`),
		opt("quantity", `"int"`),
		opt("created_at", microTS),
		opt("updated_at", microTS),
		opt("note", `"string"`),
	}, ",") + `],"connect.name":"pg.public.orders.Value"}`
	source := `{"type":"record","name":"Source","namespace":"io.debezium.connector.postgresql","fields":[` + strings.Join([]string{
		`{"name":"version","type":"string"}`, `{"name":"connector","type":"string"}`, `{"name":"name","type":"string"}`,
		`{"name":"ts_ms","type":"long"}`,
		`{"name":"snapshot","type":[{"type":"string","connect.version":1,"connect.parameters":{"allowed":"true,first,first_in_data_collection,last_in_data_collection,last,false,incremental"},"connect.default":"false","connect.name":"io.debezium.data.Enum"},"null"],"default":"false"}`,
		`{"name":"db","type":"string"}`, opt("sequence", `"string"`), opt("ts_us", `"long"`), opt("ts_ns", `"long"`),
		`{"name":"schema","type":"string"}`, `{"name":"table","type":"string"}`,
		opt("txId", `"long"`), opt("lsn", `"long"`), opt("xmin", `"long"`),
	}, ",") + `],"connect.name":"io.debezium.connector.postgresql.Source"}`
	tx := `{"type":"record","name":"block","namespace":"event","fields":[{"name":"id","type":"string"},` +
		`{"name":"total_order","type":"long"},{"name":"data_collection_order","type":"long"}],"connect.version":1,"connect.name":"event.block"}`
	return `{"type":"record","name":"Envelope","namespace":"pg.public.orders","fields":[` + strings.Join([]string{
		opt("before", row), opt("after", `"Value"`),
		`{"name":"source","type":` + source + `}`,
		`{"name":"op","type":"string"}`, opt("ts_ms", `"long"`), opt("ts_us", `"long"`), opt("ts_ns", `"long"`),
		opt("transaction", tx),
	}, ",") + `],"connect.version":2,"connect.name":"pg.public.orders.Envelope"}`
}()

// avroSource writes the source's records in the Confluent wire format: magic
// byte 0, the writer schema's registry id (4 bytes, big-endian), Avro binary.
type avroSource struct {
	keyID, valueID       int
	keyCodec, valueCodec *goavro.Codec
}

var _ sourceFormat = (*avroSource)(nil)

// registryHTTPClient is the simulator's HTTP client of the schema registry.
// It keeps no idle connection: the simulator asks the registry a few times
// per run, and a run must leave no goroutine behind.
func registryHTTPClient() *http.Client {
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
}

// newAvroSource registers the source's schemas in the registry at url and
// returns a writer of records with their ids.
func newAvroSource(ctx context.Context, url string) (*avroSource, error) {
	cl, err := sr.NewClient(sr.URLs(url), sr.HTTPClient(registryHTTPClient()))
	if err != nil {
		return nil, fmt.Errorf("schema registry client: %w", err)
	}
	s := &avroSource{}
	for _, reg := range []struct {
		subject, schema string
		id              *int
		codec           **goavro.Codec
	}{
		{SourceTopic + "-key", pgKeyAvsc, &s.keyID, &s.keyCodec},
		{SourceTopic + "-value", pgValueAvsc, &s.valueID, &s.valueCodec},
	} {
		if *reg.codec, err = goavro.NewCodec(reg.schema); err != nil {
			return nil, fmt.Errorf("schema of %s: %w", reg.subject, err)
		}
		ss, err := cl.CreateSchema(ctx, reg.subject, sr.Schema{Schema: reg.schema, Type: sr.TypeAvro})
		if err != nil {
			return nil, fmt.Errorf("registering %s: %w", reg.subject, err)
		}
		*reg.id = ss.ID
	}
	return s, nil
}

func wireEncode(c *goavro.Codec, id int, native any) ([]byte, error) {
	return c.BinaryFromNative(binary.BigEndian.AppendUint32([]byte{0}, uint32(id)), native)
}

func (s *avroSource) key(id int64) ([]byte, error) {
	b, err := wireEncode(s.keyCodec, s.keyID, map[string]any{"id": id})
	if err != nil {
		return nil, fmt.Errorf("avro key of order %d: %w", id, err)
	}
	return b, nil
}

func (s *avroSource) value(ch Change) ([]byte, error) {
	snapshot := "false"
	if ch.Op == 'r' {
		snapshot = "true"
	}
	source := map[string]any{
		"version": pgConnector, "connector": "postgresql", "name": pgPrefix, "ts_ms": ch.At.UnixMilli(),
		"snapshot": goavro.Union("string", snapshot), "db": "shop",
		"sequence": goavro.Union("string", `["`+strconv.FormatUint(ch.PrevLSN, 10)+`","`+strconv.FormatUint(ch.LSN, 10)+`"]`),
		"ts_us":    goavro.Union("long", ch.At.UnixMicro()), "ts_ns": goavro.Union("long", ch.At.UnixNano()),
		"schema": "public", "table": "orders",
		"txId": goavro.Union("long", ch.TxID), "lsn": goavro.Union("long", int64(ch.LSN)), "xmin": nil,
	}
	// The connector processes the change a little after the commit.
	processed := ch.At.Add(3 * time.Millisecond)
	env := map[string]any{
		"before": nil, "after": nil, "source": source, "op": string(ch.Op),
		"ts_ms": goavro.Union("long", processed.UnixMilli()), "ts_us": goavro.Union("long", processed.UnixMicro()),
		"ts_ns": goavro.Union("long", processed.UnixNano()), "transaction": nil,
	}
	row := goavro.Union(avroValueName, avroRow(ch.Row))
	if ch.Op == 'd' {
		env["before"] = row // REPLICA IDENTITY FULL
	} else {
		env["after"] = row
	}
	b, err := wireEncode(s.valueCodec, s.valueID, env)
	if err != nil {
		return nil, fmt.Errorf("avro value of order %d lsn %d: %w", ch.Row.ID, ch.LSN, err)
	}
	return b, nil
}

// avroRow is goavro's native form of a row: nullable columns as unions.
func avroRow(o Order) map[string]any {
	var note any
	if o.Note != nil {
		note = goavro.Union("string", *o.Note)
	}
	return map[string]any{
		"id": o.ID, "customer": goavro.Union("string", o.Customer),
		"amount": goavro.Union("bytes.decimal", big.NewRat(o.Amount, 100)),
		"status": goavro.Union("string", o.Status), "quantity": goavro.Union("int", o.Quantity),
		"created_at": goavro.Union("long", o.CreatedAt.UnixMicro()),
		"updated_at": goavro.Union("long", o.UpdatedAt.UnixMicro()),
		"note":       note,
	}
}

// avroEvents turns recon's Avro output events back into their JSON form, as
// a downstream consumer would: each record names its writer schema's id,
// whose text is fetched from the registry once and parsed with recon's
// published output schemas' converter.
type avroEvents struct {
	reg *schemas.Registry

	mu     sync.Mutex
	codecs map[int]*schemas.OutputCodec
}

func newAvroEvents(reg *schemas.Registry) *avroEvents {
	return &avroEvents{reg: reg, codecs: make(map[int]*schemas.OutputCodec)}
}

// json decodes one event value in the Confluent wire format.
func (a *avroEvents) json(ctx context.Context, b []byte) ([]byte, error) {
	var h sr.ConfluentHeader
	id, payload, err := h.DecodeID(b)
	if err != nil {
		return nil, err
	}
	a.mu.Lock()
	c, ok := a.codecs[id]
	a.mu.Unlock()
	if !ok {
		s, err := a.reg.Schema(ctx, id)
		if err != nil {
			return nil, err
		}
		if c, err = schemas.NewOutputCodec(s.Text); err != nil {
			return nil, fmt.Errorf("schema id %d: %w", id, err)
		}
		a.mu.Lock()
		a.codecs[id] = c
		a.mu.Unlock()
	}
	return c.FromBinary(payload)
}
