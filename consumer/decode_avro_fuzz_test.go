package consumer

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/linkedin/goavro/v2"

	"github.com/recon-dev/recon/compare"
)

var updateAvroSeeds = flag.Bool("update-avro-seeds", false, "rewrite the Avro fuzz seed corpus in testdata/fuzz")

// FuzzDebeziumAvro decodes arbitrary key/value bytes as debezium-avro with
// every version spec, against a fixed in-memory registry (srfake, seeded with
// the test schemas: no network). Seeds are in testdata/fuzz/FuzzDebeziumAvro,
// written by TestAvroFuzzSeeds. It checks that decoding never panics, that
// every error is a *DecodeError with a known reason (the registry never
// fails, so no *UnavailableError), that results are well formed with exact
// numbers, and that a second decode (with the schema cached) agrees.
func FuzzDebeziumAvro(f *testing.F) {
	fx := newAvroFixture(f)
	settings := []string{"lsn", "position", "field:updated_at", "offset|field:customer_id"}
	var decoders []Decoder
	for _, sp := range fuzzSpecs(f, settings...) {
		decoders = append(decoders, NewDebeziumAvro(fx.reg, sp[0], sp[1]))
	}
	f.Fuzz(func(t *testing.T, key, value []byte) {
		checkFuzzDecoders(t, settings, decoders, key, value)
	})
}

// FuzzFlatAvro is FuzzDebeziumAvro for flat-avro; no metadata may be left in
// a row. Seeds are in testdata/fuzz/FuzzFlatAvro.
func FuzzFlatAvro(f *testing.F) {
	fx := newAvroFixture(f)
	settings := []string{"lsn", "position", "field:__source_ts_ms", "offset|field:customer_id"}
	var decoders []Decoder
	for _, sp := range fuzzSpecs(f, settings...) {
		decoders = append(decoders, NewFlatAvro(fx.reg, sp[0], sp[1]))
	}
	f.Fuzz(func(t *testing.T, key, value []byte) {
		for _, d := range checkFuzzDecoders(t, settings, decoders, key, value) {
			for name := range d.Row {
				if strings.HasPrefix(name, "__") {
					t.Fatalf("metadata %q left in the row", name)
				}
			}
		}
	})
}

// checkFuzzDecoders decodes key and value twice with each decoder and
// returns the first results.
func checkFuzzDecoders(t *testing.T, settings []string, decoders []Decoder, key, value []byte) []Decoded {
	var out []Decoded
	for i, d := range decoders {
		first, err1 := d.Decode(key, value, meta)
		checkFuzzResult(t, settings[i], first, err1)
		second, err2 := d.Decode(key, value, meta)
		checkFuzzResult(t, settings[i], second, err2)
		if (err1 == nil) != (err2 == nil) || (err1 != nil && err1.Error() != err2.Error()) {
			t.Fatalf("%s: decodes disagree: %v / %v", settings[i], err1, err2)
		}
		if err1 == nil && !sameDecoded(first, second) {
			t.Fatalf("%s: decodes disagree:\n%s\n%s", settings[i], showDecoded(first), showDecoded(second))
		}
		out = append(out, first)
	}
	return out
}

// avroSeeds are the fuzz seeds, by target and name: connector-shaped records
// of every op, type and key shape, and each kind of bad input.
func avroSeeds(t *testing.T, f *avroFixture) map[string]map[string][2][]byte {
	avroKey := f.encode(t, idKey, map[string]any{"id": int64(42)})
	jsonKey := []byte(`{"id":42}`)
	good := pgEnvelope(t, f, "u", orderV1("new"), orderV1("paid"))
	logical, _ := logicalRecords(t, f, "c", nil)
	toast, _ := logicalRecords(t, f, "u", map[string][2]any{
		"enum_status": {compare.UnavailablePlaceholder, ""}, "blob": {[]byte(compare.UnavailablePlaceholder), ""},
		"tags": {[]any{compare.UnavailablePlaceholder}, ""},
	})
	v2 := f.encode(t, idEnvV2, envelopeNative("pg.public.orders.Value", "u", nil, map[string]any{"id": int64(42),
		"customer_id": goavro.Union("long", int64(7)), "status": "paid", "amount": nil,
		"updated_at": goavro.Union("long", int64(1718454600123456)), "coupon": goavro.Union("string", "SUMMER")}, pgSourceAvro(pgLSN)))
	mysql := f.encode(t, idMySQL, envelopeNative("my.shop.orders.Value", "c", nil, orderV1("new"), map[string]any{
		"version": "2.7.0.Final", "connector": "mysql", "name": "my", "ts_ms": int64(1718454600123), "db": "shop",
		"table": goavro.Union("string", "orders"), "server_id": int64(1), "gtid": nil, "file": "mysql-bin.000003",
		"pos": int64(154), "row": int32(2), "thread": nil}))
	flat := func(m map[string]any) []byte { return f.encode(t, idFlatV1, flatOrder("paid", m)) }
	return map[string]map[string][2][]byte{
		"FuzzDebeziumAvro": {
			"pg_update":             {avroKey, good},
			"pg_create_json_key":    {jsonKey, pgEnvelope(t, f, "c", nil, orderV1("new"))},
			"pg_delete":             {avroKey, pgEnvelope(t, f, "d", orderV1("paid"), nil)},
			"pg_delete_no_before":   {avroKey, pgEnvelope(t, f, "d", nil, nil)},
			"truncate":              {nil, pgEnvelope(t, f, "t", nil, nil)},
			"message":               {nil, pgEnvelope(t, f, "m", nil, nil)},
			"tombstone":             {avroKey, nil},
			"logical_types":         {jsonKey, logical},
			"toast":                 {jsonKey, toast},
			"evolved_v2":            {f.encode(t, idComposite, map[string]any{"tenant_id": "acme", "id": int64(-1)}), v2},
			"mysql_position":        {jsonKey, mysql},
			"snapshot_without_lsn":  {avroKey, f.encode(t, idEnvV1, envelopeNative("pg.public.orders.Value", "r", nil, orderV1("new"), pgSourceAvro(nil)))},
			"truncated":             {avroKey, good[:len(good)-4]},
			"bad_magic":             {avroKey, append([]byte{1}, good[1:]...)},
			"unknown_schema_id":     {avroKey, wire(idUnknown, 0)},
			"unknown_op":            {avroKey, pgEnvelope(t, f, "x", nil, orderV1("paid"))},
			"plain_string_key":      {[]byte("Struct{id=42}"), good},
			"deep_list":             {nil, append(wire(idList, 0x02, 0x02, 0x02, 0x02), 0x00)},
			"zero_size_array_count": {nil, append(wire(idNulls, 0x02, 'c'), 0xfe, 0xff, 0xff, 0xff, 0x0f)},
		},
		"FuzzFlatAvro": {
			"update":        {avroKey, flat(md("op", "u", "lsn", 24023128, "source_ts_ms", 1718454600123, "deleted", "false"))},
			"delete":        {avroKey, flat(md("op", "d", "deleted", "true"))},
			"position":      {jsonKey, flat(md("op", "c", "source_file", "mysql-bin.000003", "source_pos", 154, "source_row", 2))},
			"no_metadata":   {avroKey, flat(nil)},
			"truncate":      {nil, flat(md("op", "t"))},
			"tombstone":     {avroKey, nil},
			"bad_deleted":   {avroKey, flat(md("deleted", "yes"))},
			"unknown_op":    {avroKey, flat(md("op", "x"))},
			"truncated":     {avroKey, flat(md("op", "u"))[:10]},
			"envelope_seen": {avroKey, good},
		},
	}
}

// TestAvroFuzzSeeds keeps the seed corpus in step with the test schemas;
// run with -update-avro-seeds to rewrite it after changing them.
func TestAvroFuzzSeeds(t *testing.T) {
	f := newAvroFixture(t)
	for target, seeds := range avroSeeds(t, f) {
		dir := filepath.Join("testdata", "fuzz", target)
		names := make([]string, 0, len(seeds))
		for name, kv := range seeds {
			names = append(names, name)
			body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n[]byte(%q)\n", kv[0], kv[1])
			path := filepath.Join(dir, name)
			if *updateAvroSeeds {
				if err := os.MkdirAll(dir, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
					t.Fatal(err)
				}
				continue
			}
			got, err := os.ReadFile(path)
			if err != nil || string(got) != body {
				t.Errorf("%s is missing or stale (run go test -run TestAvroFuzzSeeds -update-avro-seeds): %v", path, err)
			}
		}
		if *updateAvroSeeds {
			continue
		}
		// Seeds found by fuzzing may be added by hand; generated ones must be there.
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range names {
			if !slices.ContainsFunc(entries, func(e os.DirEntry) bool { return e.Name() == name }) {
				t.Errorf("%s: seed %s missing", dir, name)
			}
		}
	}
}
