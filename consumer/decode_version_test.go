package consumer

import (
	"testing"

	"github.com/recon-dev/recon/compare"
)

func TestDecodeVersions(t *testing.T) {
	my := func(op, before, after string) []byte {
		return []byte(`{"before":` + before + `,"after":` + after + `,"source":{"connector":"mysql","ts_ms":1718454600123,"snapshot":"false",` +
			`"db":"shop","table":"t","server_id":223344,"gtid":"3E11FA47-71CA-11E1-9E33-C80AA9429562:23","file":"mysql-bin.000003","pos":154,"row":2},"op":"` + op + `"}`)
	}
	row := func(fields string) map[string]any {
		m := map[string]any{"id": num("1")}
		switch fields {
		case "version":
			m["version"] = num("17")
		}
		return m
	}
	typed := envSchema(cols(col("id", "int64", ""), col("updated_at", "string", nameZonedTimestamp), col("at", "int64", nameMicroTimestamp)))
	upd := utc("2024-06-15T12:30:00.1234Z")
	runDecodeCases(t, []decodeCase{{
		// An LSN past 2^53 (9007199254740993 = 2^53+1) must not round through float64.
		name: "lsn beyond 2^53", value: []byte(`{"op":"c","after":{"id":1},"source":{"ts_ms":1718454600123,"lsn":9007199254740993}}`),
		want: Decoded{Op: compare.OpUpsert, Row: row(""), Version: compare.Version{A: 9007199254740993}, EventTime: pgTime},
	}, {
		// mysql-bin.000003 pos 154 row 2 orders as (3, 154, 2); the gtid is ignored.
		name: "position", version: "position", value: my("c", "null", `{"id":1}`),
		want: Decoded{Op: compare.OpUpsert, Row: row(""), Version: compare.Version{A: 3, B: 154, C: 2}, EventTime: pgTime},
	}, {
		// A MySQL delete still has its position.
		name: "position delete", version: "position", value: my("d", `{"id":1}`, "null"),
		want: Decoded{Op: compare.OpDelete, Row: row(""), Version: compare.Version{A: 3, B: 154, C: 2}, EventTime: pgTime},
	}, {
		// A binlog name without a numeric suffix cannot be ordered.
		name: "position bad file", version: "position",
		value:  []byte(`{"op":"c","after":{"id":1},"source":{"file":"mysql-bin","pos":154,"row":0}}`),
		reason: ReasonBadValue, errHas: "source.file",
	}, {
		// Position needs the file; a PG event has none.
		name: "position missing", version: "position", value: []byte(pgEvent("c", "null", `{"id":1}`)),
		reason: ReasonMissingVersion, errHas: "source.file",
	}, {
		// An integer column is the version as is.
		name: "field integer", version: "field:version", value: []byte(pgEvent("c", "null", `{"id":1,"version":17}`)),
		want: Decoded{Op: compare.OpUpsert, Row: row("version"), Version: compare.Version{A: 17}, EventTime: pgTime},
	}, {
		// For deletes the version comes from the before image.
		name: "field from before", version: "field:version", value: []byte(pgEvent("d", `{"id":1,"version":17}`, "null")),
		want: Decoded{Op: compare.OpDelete, Row: row("version"), Version: compare.Version{A: 17}, EventTime: pgTime},
	}, {
		// A delete without before image has no row to read the field from.
		name: "field delete without before", version: "field:version", value: []byte(pgEvent("d", "null", "null")),
		reason: ReasonMissingVersion, errHas: `"version" is missing`,
	}, {
		// Versions count up from zero.
		name: "field negative", version: "field:version", value: []byte(pgEvent("c", "null", `{"id":1,"version":-3}`)),
		reason: ReasonBadValue, errHas: "negative",
	}, {
		// A numeric string (a bigint sent as text) is an integer version.
		name: "field numeric string", version: "field:version", value: []byte(pgEvent("c", "null", `{"id":1,"version":"18446744073709551615"}`)),
		want: Decoded{Op: compare.OpUpsert, Row: map[string]any{"id": num("1"), "version": "18446744073709551615"},
			Version: compare.Version{A: 18446744073709551615}, EventTime: pgTime},
	}, {
		// An ISO string without the wrapper: Unix microseconds of the instant.
		name: "field iso string", version: "field:updated_at",
		value: []byte(pgEvent("c", "null", `{"id":1,"updated_at":"2024-06-15T12:30:00.1234Z"}`)),
		want: Decoded{Op: compare.OpUpsert, Row: map[string]any{"id": num("1"), "updated_at": "2024-06-15T12:30:00.1234Z"},
			Version: compare.Version{A: 1718454600123400}, EventTime: pgTime},
	}, {
		// A ZonedTimestamp through the wrapper is a time.Time; same microseconds.
		name: "field zoned timestamp", version: "field:updated_at",
		value: wrap(typed, pgEvent("u", "null", `{"id":1,"updated_at":"2024-06-15T14:30:00.1234+02:00"}`)),
		want: Decoded{Op: compare.OpUpsert, Row: map[string]any{"id": num("1"), "updated_at": upd},
			Version: compare.Version{A: 1718454600123400}, EventTime: pgTime},
	}, {
		// A MicroTimestamp through the wrapper: its microseconds.
		name: "field micro timestamp", version: "field:at",
		value: wrap(typed, pgEvent("u", "null", `{"id":1,"at":1718454600123456}`)),
		want: Decoded{Op: compare.OpUpsert, Row: map[string]any{"id": num("1"), "at": utc("2024-06-15T12:30:00.123456Z")},
			Version: compare.Version{A: 1718454600123456}, EventTime: pgTime},
	}, {
		// A null version column cannot order the change.
		name: "field null", version: "field:version", value: []byte(pgEvent("c", "null", `{"id":1,"version":null}`)),
		reason: ReasonMissingVersion, errHas: "null",
	}, {
		// A boolean is no version.
		name: "field boolean", version: "field:version", value: []byte(pgEvent("c", "null", `{"id":1,"version":true}`)),
		reason: ReasonBadValue, errHas: "boolean",
	}, {
		// A TOASTed column was not sent, so it cannot version the row.
		name: "field unavailable", version: "field:version", value: []byte(pgEvent("c", "null", `{"id":1,"version":"`+compare.UnavailablePlaceholder+`"}`)),
		reason: ReasonMissingVersion, errHas: "not sent",
	}, {
		// offset: the record's Kafka offset plus one (meta.Offset is 7), since the
		// zero Version means none and offset 0 is a change.
		name: "offset", version: "offset", value: []byte(pgEvent("c", "null", `{"id":1}`)),
		want: Decoded{Op: compare.OpUpsert, Row: row(""), Version: compare.Version{A: 8}, EventTime: pgTime},
	}, {
		// Lineage: the source LSN a target row was derived from, beyond 2^53.
		name: "lineage", version: "offset", lineage: "field:_src_lsn",
		value: []byte(pgEvent("c", "null", `{"id":1,"_src_lsn":9007199254740993}`)),
		want: Decoded{Op: compare.OpUpsert, Row: map[string]any{"id": num("1"), "_src_lsn": num("9007199254740993")},
			Version: compare.Version{A: 8}, Lineage: compare.Version{A: 9007199254740993}, EventTime: pgTime},
	}, {
		// A row without the lineage field is a row the target wrote itself: zero, no error.
		name: "lineage absent", version: "offset", lineage: "field:_src_lsn", value: []byte(pgEvent("c", "null", `{"id":1}`)),
		want: Decoded{Op: compare.OpUpsert, Row: row(""), Version: compare.Version{A: 8}, EventTime: pgTime},
	}, {
		// A null lineage is the same.
		name: "lineage null", version: "offset", lineage: "field:_src_lsn", value: []byte(pgEvent("c", "null", `{"id":1,"_src_lsn":null}`)),
		want: Decoded{Op: compare.OpUpsert, Row: map[string]any{"id": num("1"), "_src_lsn": nil}, Version: compare.Version{A: 8}, EventTime: pgTime},
	}, {
		// A lineage that is present but not a version is bad data, not absence.
		name: "lineage bad", version: "offset", lineage: "field:_src_lsn", value: []byte(pgEvent("c", "null", `{"id":1,"_src_lsn":"x"}`)),
		reason: ReasonBadValue, errHas: "_src_lsn",
	}, {
		// Lineage of a delete comes from its before image.
		name: "lineage delete", version: "lsn", lineage: "field:_src_lsn",
		value: []byte(pgEvent("d", `{"id":1,"_src_lsn":99}`, "null")),
		want: Decoded{Op: compare.OpDelete, Row: map[string]any{"id": num("1"), "_src_lsn": num("99")}, Version: lsnV,
			Lineage: compare.Version{A: 99}, EventTime: pgTime},
	}})
}

func TestVersionValue(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   any
		want uint64
		bad  bool
	}{
		{"integral decimal", dec("12300", 2), 123, false}, // 123.00
		{"fractional decimal", dec("12345", 2), 0, true},  // 123.45 orders nothing exactly
		{"decimal hostile scale", compare.Decimal{Unscaled: dec("5", 0).Unscaled, Scale: 2147483647}, 0, true},
		{"negative scale", dec("5", -3), 5000, false}, // 5e3
		{"date", compare.Date(1), 86400000000, false}, // 1970-01-02 in µs
		{"before 1970", utc("1969-12-31T23:59:59Z"), 0, true},
		{"float text", num("1.5"), 0, true},
	} {
		got, reason := versionValue(tc.in)
		if (reason != "") != tc.bad || got != tc.want {
			t.Errorf("%s: versionValue = %d, %q; want %d, bad=%v", tc.name, got, reason, tc.want, tc.bad)
		}
	}
}
