package schemas

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/linkedin/goavro/v2"

	"github.com/recon-dev/recon/compare"
	"github.com/recon-dev/recon/repair"
)

// Times in events are milliseconds: recon stamps them so when it writes Avro.
var (
	t0       = time.Date(2024, 6, 15, 12, 30, 0, 123_000_000, time.UTC)
	digestA  = compare.Digest{0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef}
	digestB  = compare.Digest{0xfe, 0xdc, 0xba, 0x98, 0x76, 0x54, 0x32, 0x10, 0xfe, 0xdc, 0xba, 0x98, 0x76, 0x54, 0x32, 0x10}
	intKey   = compare.Key{Fields: []string{"id"}, Values: []compare.Value{{Kind: compare.KindInt, Text: "42"}}}
	multiKey = compare.Key{Fields: []string{"tenant_id", "id"}, Values: []compare.Value{
		{Kind: compare.KindString, Text: "acme/eu, <a&b>"}, {Kind: compare.KindInt, Text: "-7"}}}
)

func divergence(kind, event string) repair.Divergence {
	return repair.Divergence{
		ID: repair.ID("divergence", kind), Event: event, Dataset: "orders", Target: "warehouse", Key: intKey, Kind: kind,
		OpenedAt: t0.Add(-30 * time.Second), DetectedAt: t0, WindowMS: 30_000,
		Rationale: "the source holds the key at version 100; the target never had it", RulesVersion: "1",
	}
}

func src(deleted bool) *repair.SourceState {
	return &repair.SourceState{Version: "24023128", Digest: digestA, Deleted: deleted, EventTime: t0.Add(-time.Minute)}
}

func tgt(reflects string) *repair.TargetState {
	return &repair.TargetState{Version: "mysql-bin.000003:800911:0", Digest: digestB, Reflects: reflects, SeenAt: t0.Add(-40 * time.Second)}
}

// fullRow holds a value of every kind a row can carry, including those that
// no Avro scalar holds exactly.
func fullRow() compare.Row {
	return compare.Row{
		"order_id":   {Kind: compare.KindInt, Text: "42"},
		"big":        {Kind: compare.KindInt, Text: "18446744073709551615"}, // MySQL BIGINT UNSIGNED max
		"amount":     {Kind: compare.KindDecimal, Text: "1234.50"},
		"ratio":      {Kind: compare.KindFloat, Text: "0.1"},
		"huge":       {Kind: compare.KindFloat, Text: "1e+21"},
		"whole":      {Kind: compare.KindFloat, Text: "3"},
		"negzero":    {Kind: compare.KindFloat, Text: "-0"},
		"paid":       {Kind: compare.KindBool, Text: "true"},
		"note":       {Kind: compare.KindNull},
		"status":     {Kind: compare.KindString, Text: "paid <fast> & \"quoted\" é"},
		"created_at": {Kind: compare.KindTime, Text: "2024-06-15T12:30:00.123456Z"},
		"ship_date":  {Kind: compare.KindDate, Text: "2024-06-15"},
		"ship_time":  {Kind: compare.KindTimeOfDay, Text: "12:30:00.5"},
		"blob":       {Kind: compare.KindBytes, Text: "AeI6"},
		"attrs":      {Kind: compare.KindJSON, Text: `{"a":[1,2.5,"x"],"b":{"c":null}}`},
		"tags":       {Kind: compare.KindJSON, Text: `["x","y"]`},
	}
}

func repairEvent(action string) repair.Repair {
	r := repair.Repair{
		ID: repair.ID("repair", action), DivergenceID: repair.ID("divergence", "missing"), Dataset: "orders", Target: "warehouse",
		Key: multiKey, Action: action, Kind: "missing", SourceVersion: "24023128", ExpectedDigest: digestA,
		Mode: "auto", CreatedAt: t0, Rationale: "the source holds the key", RulesVersion: "1",
	}
	if action == repair.ActionUpsert {
		r.After = fullRow()
	} else {
		r.Kind, r.ExpectedDigest, r.PreviousDigest = "orphan", compare.Digest{}, digestB
	}
	return r
}

// outputEvents are every output event recon writes, one of each shape.
func outputEvents() []struct {
	name   string
	schema string
	event  any
} {
	opened := func(kind string, s *repair.SourceState, t *repair.TargetState) repair.Divergence {
		d := divergence(kind, "opened")
		d.Source, d.TargetState = s, t
		return d
	}
	resolved := opened("conflict", src(false), tgt("24023128"))
	resolved.Event, resolved.Key = "resolved", multiKey
	at := t0.Add(5 * time.Second)
	resolved.ResolvedAt = &at
	dry := repairEvent(repair.ActionUpsert)
	dry.DryRun = true
	approved := repairEvent(repair.ActionUpsert)
	approved.Kind, approved.Mode, approved.ApprovedBy, approved.PreviousDigest = "conflict", "approved", "alice@example.com", digestB
	reference := repairEvent(repair.ActionUpsert)
	reference.After = nil // payload: reference
	empty := repairEvent(repair.ActionUpsert)
	empty.After = compare.Row{} // a row of no columns is not "no row"
	overwrite := repairEvent(repair.ActionUpsert)
	overwrite.Kind, overwrite.PreviousDigest, overwrite.Before = "conflict", digestB, fullRow()
	revert := repairEvent(repair.ActionUpsert)
	revert.ExpectedDigest, revert.PreviousDigest, revert.After, revert.Before = digestB, digestA, fullRow(), fullRow()
	revert.Mode, revert.ApprovedBy, revert.Reverts = "approved", "bob", repair.ID("repair", "upsert")
	storm := divergence(repair.KindStorm, repair.EventStorm)
	storm.Target, storm.Key, storm.Rationale = "", compare.Key{}, "120 of 1000 keys (12.0%) have an open divergence, above max_divergent_ratio 0.1"
	cleared := storm
	cleared.Event, cleared.ResolvedAt = repair.EventStormCleared, &at

	return []struct {
		name   string
		schema string
		event  any
	}{
		{"opened missing", divergenceAvsc, opened("missing", src(false), nil)},
		{"opened orphan, source deleted", divergenceAvsc, opened("orphan", src(true), tgt(""))},
		{"opened orphan, source never seen", divergenceAvsc, opened("orphan", nil, tgt(""))},
		{"opened lagging", divergenceAvsc, opened("lagging", src(false), tgt("24023000"))},
		{"opened conflict", divergenceAvsc, opened("conflict", src(false), tgt(""))},
		{"resolved", divergenceAvsc, resolved},
		{"storm", divergenceAvsc, storm},
		{"storm cleared", divergenceAvsc, cleared},
		{"repair upsert, full payload", repairAvsc, repairEvent(repair.ActionUpsert)},
		{"repair upsert, reference payload", repairAvsc, reference},
		{"repair upsert, empty row", repairAvsc, empty},
		{"repair delete", repairAvsc, repairEvent(repair.ActionDelete)},
		{"repair dry-run", repairAvsc, dry},
		{"repair approved", repairAvsc, approved},
		{"repair over a live row, with the row it replaces", repairAvsc, overwrite},
		{"compensating repair", repairAvsc, revert},
	}
}

// Every output event goes through its schema and comes back as the same JSON,
// field by field: Avro loses nothing of the JSON form.
func TestOutputEventsRoundTrip(t *testing.T) {
	for _, tc := range outputEvents() {
		t.Run(tc.name, func(t *testing.T) {
			js, err := repair.Marshal(tc.event)
			if err != nil {
				t.Fatal(err)
			}
			c, err := NewOutputCodec(tc.schema)
			if err != nil {
				t.Fatal(err)
			}
			bin, err := c.Binary(js)
			if err != nil {
				t.Fatalf("encoding %s: %v", js, err)
			}
			// Decode with a codec of its own, as a consumer would.
			reader, err := goavro.NewCodec(tc.schema)
			if err != nil {
				t.Fatal(err)
			}
			native, rest, err := reader.NativeFromBinary(bin)
			if err != nil || len(rest) != 0 {
				t.Fatalf("decoding: %v (%d bytes left)", err, len(rest))
			}
			back, err := c.JSON(native)
			if err != nil {
				t.Fatal(err)
			}
			assertSameJSON(t, reflect.TypeOf(tc.event), js, back)
		})
	}
}

// assertSameJSON compares two JSON forms of an event field by field, numbers
// by their literal. A field the original omits must come back null, and only
// if its json tag says omitempty.
func assertSameJSON(t *testing.T, typ reflect.Type, want, got []byte) {
	t.Helper()
	sameJSON(t, "", decodeJSON(t, want), decodeJSON(t, got), omitEmpty(typ))
	if t.Failed() {
		t.Logf("JSON  %s\nback  %s", want, got)
	}
}

func sameJSON(t *testing.T, path string, want, got any, omits map[string]bool) {
	t.Helper()
	w, wok := want.(map[string]any)
	g, gok := got.(map[string]any)
	if !wok || !gok {
		if !reflect.DeepEqual(want, got) {
			t.Errorf("%s: got %#v, want %#v", path, got, want)
		}
		return
	}
	for k, wv := range w {
		gv, ok := g[k]
		if !ok {
			t.Errorf("%s: missing", join(path, k))
			continue
		}
		sameJSON(t, join(path, k), wv, gv, omits)
	}
	for k, gv := range g {
		if _, ok := w[k]; !ok && (gv != nil || !omits[join(path, k)]) {
			t.Errorf("%s: got %#v, which the JSON form does not have", join(path, k), gv)
		}
	}
}

func decodeJSON(t *testing.T, b []byte) map[string]any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	return m
}

// omitEmpty lists the json names of typ's fields (and its nested structs')
// that the JSON form leaves out when empty.
func omitEmpty(typ reflect.Type) map[string]bool {
	out := map[string]bool{}
	for f := range jsonFields(typ) {
		if f.omitempty {
			out[f.path] = true
		}
	}
	return out
}

// The native form is typed: a consumer reads numbers, times and enums, not
// text to parse.
func TestOutputNativeIsTyped(t *testing.T) {
	ev := repairEvent(repair.ActionUpsert)
	js, _ := repair.Marshal(ev)
	c, err := NewOutputCodec(repairAvsc)
	if err != nil {
		t.Fatal(err)
	}
	n, err := c.Native(js)
	if err != nil {
		t.Fatal(err)
	}
	rec := n.(map[string]any)
	after := rec["after"].(map[string]any)["map"].(map[string]any)
	for col, want := range map[string]any{
		"order_id": goavro.Union("long", int64(42)),
		"big":      goavro.Union("dev.recon.JsonValue", map[string]any{"json": "18446744073709551615"}),
		"amount":   goavro.Union("string", "1234.50"),
		"ratio":    goavro.Union("double", 0.1),
		"huge":     goavro.Union("double", 1e21),
		"whole":    goavro.Union("long", int64(3)),
		"paid":     goavro.Union("boolean", true),
		"note":     nil,
		"attrs":    goavro.Union("dev.recon.JsonValue", map[string]any{"json": `{"a":[1,2.5,"x"],"b":{"c":null}}`}),
	} {
		if !reflect.DeepEqual(after[col], want) {
			t.Errorf("after.%s = %#v, want %#v", col, after[col], want)
		}
	}
	key := rec["key"].(map[string]any)
	if !reflect.DeepEqual(key["id"], goavro.Union("long", int64(-7))) || !reflect.DeepEqual(key["tenant_id"], goavro.Union("string", "acme/eu, <a&b>")) {
		t.Errorf("key = %#v", key)
	}
	if rec["created_at"] != t0 || rec["action"] != "upsert" || rec["approved_by"] != nil {
		t.Errorf("created_at %#v, action %#v, approved_by %#v", rec["created_at"], rec["action"], rec["approved_by"])
	}
}

func TestOutputSchemasParse(t *testing.T) {
	for name, s := range map[string]string{"dev.recon.Divergence": OutputDivergenceSchema(), "dev.recon.Repair": OutputRepairSchema()} {
		if _, err := goavro.NewCodec(s); err != nil {
			t.Errorf("goavro refuses %s: %v", name, err)
		}
		c, err := NewOutputCodec(s)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if c.Name() != name {
			t.Errorf("schema names %s, want %s", c.Name(), name)
		}
	}
}

// Every JSON field of the event structs has its field in the schema, of a
// fitting type, and the schema has no field the structs lack: adding a field
// to an event without the schema fails here.
func TestOutputSchemasCoverEventFields(t *testing.T) {
	for _, tc := range []struct {
		typ    reflect.Type
		schema string
	}{
		{reflect.TypeFor[repair.Divergence](), divergenceAvsc},
		{reflect.TypeFor[repair.Repair](), repairAvsc},
	} {
		root, err := parseAvroType(tc.schema)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range coverage(tc.typ, root) {
			t.Error(p)
		}
	}
}

// The coverage check itself notices drift in either direction.
func TestOutputCoverageNoticesDrift(t *testing.T) {
	type extra struct {
		repair.Repair
		Severity string `json:"severity"`
	}
	root, err := parseAvroType(repairAvsc)
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(coverage(reflect.TypeFor[extra](), root), "\n")
	if got != `extra.Severity (json "severity") has no field in schema dev.recon.Repair` {
		t.Errorf("a struct field missing from the schema went unnoticed: %s", got)
	}
	dropped, err := parseAvroType(strings.Replace(divergenceAvsc, `{"name": "reflects", "type": ["null", "string"], "default": null, "doc": "The source version the target's row is known to reflect, if any."},`, "", 1))
	if err != nil {
		t.Fatal(err)
	}
	got = strings.Join(coverage(reflect.TypeFor[repair.Divergence](), dropped), "\n")
	if !strings.Contains(got, `TargetState.Reflects (json "reflects") has no field in schema dev.recon.TargetState`) {
		t.Errorf("a nested field missing from the schema went unnoticed: %s", got)
	}
}

// coverage lists where typ's JSON fields and the record rec disagree.
func coverage(typ reflect.Type, rec *avroType) []string {
	var problems []string
	seen := map[string]bool{}
	for f := range jsonFields(typ) {
		if f.nested {
			continue
		}
		seen[f.name] = true
		i := slices.IndexFunc(rec.fields, func(af avroField) bool { return af.name == f.name })
		if i < 0 {
			problems = append(problems, fmt.Sprintf("%s.%s (json %q) has no field in schema %s", typ.Name(), f.goName, f.name, rec.name))
			continue
		}
		problems = append(problems, typeFits(typ.Name()+"."+f.goName, f, rec.fields[i].typ)...)
	}
	for _, af := range rec.fields {
		if !seen[af.name] {
			problems = append(problems, fmt.Sprintf("schema %s has field %s, which %s does not", rec.name, af.name, typ.Name()))
		}
	}
	return problems
}

// typeFits says whether a Go field's JSON form fits its schema type.
func typeFits(where string, f jsonField, at *avroType) []string {
	ft := f.typ
	nullable := ft.Kind() == reflect.Pointer || f.omitempty || ft == reflect.TypeFor[compare.Row]()
	bad := func(format string, args ...any) []string {
		return []string{where + ": " + fmt.Sprintf(format, args...)}
	}
	if at.typ == "union" {
		var nonNull []*avroType
		hasNull := false
		for _, m := range at.members {
			if m.typ == "null" {
				hasNull = true
			} else {
				nonNull = append(nonNull, m)
			}
		}
		if hasNull != nullable || len(nonNull) != 1 {
			return bad("a union of %d types, null %v, does not fit a field that is nullable=%v", len(at.members), hasNull, nullable)
		}
		at = nonNull[0]
	} else if nullable {
		return bad("JSON can be null or absent, schema type %s cannot", at.name)
	}
	if ft.Kind() == reflect.Pointer {
		ft = ft.Elem()
	}
	switch {
	case ft == reflect.TypeFor[time.Time]():
		if at.name != "long.timestamp-millis" {
			return bad("a time in schema type %s", at.name)
		}
	case ft == reflect.TypeFor[compare.Key](), ft == reflect.TypeFor[compare.Row]():
		if at.typ != "map" || at.values.typ != "union" || !hasMember(at.values, jsonValueName) {
			return bad("a key or row in schema type %s, want a map of the value union", at.name)
		}
	case ft == reflect.TypeFor[compare.Digest](), ft.Kind() == reflect.String:
		if at.typ != "string" && at.typ != "enum" {
			return bad("a string in schema type %s", at.name)
		}
	case ft.Kind() == reflect.Bool:
		if at.typ != "boolean" {
			return bad("a bool in schema type %s", at.name)
		}
	case ft.Kind() == reflect.Int64:
		if at.typ != "long" || at.logical != "" {
			return bad("an int64 in schema type %s", at.name)
		}
	case ft.Kind() == reflect.Struct:
		if at.typ != "record" {
			return bad("a struct in schema type %s", at.name)
		}
		return coverage(ft, at)
	default:
		return bad("Go type %s has no rule here: teach typeFits", ft)
	}
	return nil
}

func hasMember(u *avroType, name string) bool {
	for _, m := range u.members {
		if m.name == name {
			return true
		}
	}
	return false
}

type jsonField struct {
	name, goName string
	path         string // e.g. target_state.reflects
	typ          reflect.Type
	omitempty    bool
	nested       bool // a field of a nested struct, listed by omitEmpty only
}

// jsonFields yields typ's fields as encoding/json sees them, then those of
// its nested event structs.
func jsonFields(typ reflect.Type) func(func(jsonField) bool) {
	return func(yield func(jsonField) bool) {
		var walk func(reflect.Type, string) bool
		walk = func(typ reflect.Type, prefix string) bool {
			for i := range typ.NumField() {
				sf := typ.Field(i)
				tag := sf.Tag.Get("json")
				if tag == "-" || !sf.IsExported() {
					continue
				}
				name, opts, _ := strings.Cut(tag, ",")
				if name == "" && sf.Anonymous && sf.Type.Kind() == reflect.Struct {
					// encoding/json lifts an embedded struct's fields.
					if !walk(sf.Type, prefix) {
						return false
					}
					continue
				}
				if name == "" {
					name = sf.Name
				}
				f := jsonField{name: name, goName: sf.Name, path: join(prefix, name), typ: sf.Type,
					omitempty: strings.Contains(opts, "omitempty"), nested: prefix != ""}
				if !yield(f) {
					return false
				}
				et := sf.Type
				if et.Kind() == reflect.Pointer {
					et = et.Elem()
				}
				if et.Kind() == reflect.Struct && et.PkgPath() == typ.PkgPath() {
					if !walk(et, f.path) {
						return false
					}
				}
			}
			return true
		}
		walk(typ, "")
	}
}

// A JSON field the schema has no place for is refused, not dropped.
func TestOutputCodecRefusesUnknownFields(t *testing.T) {
	c, err := NewOutputCodec(divergenceAvsc)
	if err != nil {
		t.Fatal(err)
	}
	js, _ := repair.Marshal(divergence("missing", "opened"))
	js = append(js[:len(js)-1], `,"severity":"high"}`...)
	if _, err := c.Binary(js); err == nil || !strings.Contains(err.Error(), "severity: no field in dev.recon.Divergence") {
		t.Errorf("Binary with an unknown field: %v", err)
	}
	for _, bad := range []string{
		`{"id":"x"}`, // required fields missing
		strings.Replace(string(mustMarshal(t, divergence("missing", "opened"))), `"kind":"missing"`, `"kind":"stale"`, 1),
		strings.Replace(string(mustMarshal(t, divergence("missing", "opened"))), `"window_ms":30000`, `"window_ms":1.5`, 1),
		`{"id":"x"} {}`,
	} {
		if _, err := c.Binary([]byte(bad)); err == nil {
			t.Errorf("Binary(%s) succeeded", bad)
		}
	}
}

func mustMarshal(t *testing.T, v any) []byte {
	t.Helper()
	b, err := repair.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Times finer than a millisecond are truncated, not refused: events written
// to the outbox before a switch to Avro (with recon's clock then at full
// precision) still go out. Those recon stamps under Avro are milliseconds.
func TestOutputTimesTruncateToMillis(t *testing.T) {
	d := divergence("missing", "opened")
	d.DetectedAt = t0.Add(456789 * time.Nanosecond)
	c, err := NewOutputCodec(divergenceAvsc)
	if err != nil {
		t.Fatal(err)
	}
	bin, err := c.Binary(mustMarshal(t, d))
	if err != nil {
		t.Fatal(err)
	}
	back, err := c.FromBinary(bin)
	if err != nil {
		t.Fatal(err)
	}
	if got := decodeJSON(t, back)["detected_at"]; got != "2024-06-15T12:30:00.123Z" {
		t.Errorf("detected_at %v, want 2024-06-15T12:30:00.123Z", got)
	}
}
