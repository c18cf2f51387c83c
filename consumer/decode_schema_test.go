package consumer

import (
	"fmt"
	"sync"
	"testing"

	"github.com/recon-dev/recon/compare"
)

// TestDecodeTestdata decodes whole connector-shaped records from testdata.
func TestDecodeTestdata(t *testing.T) {
	u := compare.Unavailable{}
	key := map[string]any{"id": num("9223372036854775807")}
	// The update of pg_orders_update*.json, at LSN 2^53+1, committed 12:30:00.123.
	pgWant := Decoded{Op: compare.OpUpsert, Key: key, Version: compare.Version{A: 9007199254740993}, EventTime: pgTime}
	typedRow := map[string]any{
		"id": num("9223372036854775807"), "customer_id": num("4711"), "status": "paid",
		"amount": dec("123450", 2), "currency": "EUR", "created_at": utc("2024-06-15T12:30:00.123456Z"),
		"updated_at": utc("2024-06-15T12:30:00.1234Z"), "ship_date": compare.Date(19889), "note": u, "version": num("17"),
	}
	rawRow := map[string]any{
		"id": num("9223372036854775807"), "customer_id": num("4711"), "status": "paid",
		"amount": "AeI6", "currency": "EUR", "created_at": num("1718454600123456"),
		"updated_at": "2024-06-15T12:30:00.1234Z", "ship_date": num("19889"), "note": u, "version": num("17"),
	}
	wrappedWant, rawWant := pgWant, pgWant
	wrappedWant.Row, rawWant.Row = typedRow, rawRow
	myWant := Decoded{
		Op: compare.OpDelete, Key: map[string]any{"id": num("42")}, Version: compare.Version{A: 3, B: 154, C: 2},
		EventTime: utc("2024-06-15T12:30:00Z"),
		Row: map[string]any{
			"id": num("42"), "amount": dec("-123450", 2), "created_at": utc("2024-06-15T12:30:00.123Z"),
			"ship_date": compare.Date(19889), "ship_time": compare.TimeOfDay(45000123000000), "thumbnail": []byte("\x89PNG\r\n\x1a\n"),
		},
	}
	runDecodeCases(t, []decodeCase{{
		// Every logical column of the schema converts; the TOASTed note is Unavailable.
		name: "pg wrapped", key: readTestdata(t, "pg_orders_key_wrapped.json"), value: readTestdata(t, "pg_orders_update_wrapped.json"),
		want: wrappedWant,
	}, {
		// The same event without schemas: the same row, untyped.
		name: "pg unwrapped", key: readTestdata(t, "pg_orders_key.json"), value: readTestdata(t, "pg_orders_update.json"),
		want: rawWant,
	}, {
		// A MySQL delete under time.precision.mode=connect, ordered by binlog position.
		name: "mysql delete wrapped", version: "position", key: []byte(`{"id":42}`), value: readTestdata(t, "mysql_orders_delete_wrapped.json"),
		want: myWant,
	}})
}

// TestSchemaCacheBounded: a topic whose schema keeps changing must not grow
// the cache without bound, and evicted schemas still decode.
func TestSchemaCacheBounded(t *testing.T) {
	d := NewDebeziumJSON(compare.VersionSpec{Kind: compare.VersionLSN}, compare.VersionSpec{})
	for i := range 3 * schemaCacheSize {
		schema := envSchema(col(fmt.Sprintf("c%d", i), "int64", nameMicroTimestamp))
		value := wrap(schema, pgEvent("c", "null", fmt.Sprintf(`{"c%d":0}`, i)))
		got, err := d.Decode(nil, value, meta)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := got.Row[fmt.Sprintf("c%d", i)].(interface{ UnixMicro() int64 }); !ok {
			t.Fatalf("schema %d: column not converted: %s", i, show(got.Row))
		}
	}
	if n := len(*d.schemas.entries.Load()); n != schemaCacheSize {
		t.Fatalf("cache holds %d schemas, want %d", n, schemaCacheSize)
	}
}

// TestDecodeConcurrent runs one decoder from many goroutines over several
// schemas, for the race detector and the copy-on-write cache.
func TestDecodeConcurrent(t *testing.T) {
	d := NewDebeziumJSON(compare.VersionSpec{Kind: compare.VersionLSN}, compare.VersionSpec{})
	values := make([][]byte, 2*schemaCacheSize)
	for i := range values {
		values[i] = wrap(envSchema(col(fmt.Sprintf("c%d", i), "bytes", nameDecimal, "scale", "2")),
			pgEvent("c", "null", fmt.Sprintf(`{"c%d":"AeI6"}`, i)))
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Go(func() {
			for n := range 200 {
				i := (g + n) % len(values)
				got, err := d.Decode([]byte(`{"id":1}`), values[i], meta)
				if err != nil {
					errs <- err
					return
				}
				if !sameValue(got.Row[fmt.Sprintf("c%d", i)], dec("123450", 2)) {
					errs <- fmt.Errorf("value %d: row %s", i, show(got.Row))
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
