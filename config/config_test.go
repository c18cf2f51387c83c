package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

const testKey = "0123456789abcdef0123456789abcdef"

// env is a lookup func over a fixed environment.
func env(vars map[string]string) func(string) (string, bool) {
	return func(name string) (string, bool) {
		v, ok := vars[name]
		return v, ok
	}
}

var testEnv = env(map[string]string{"RECON_DIGEST_KEY": testKey, "KAFKA_PASSWORD": "hunter2"})

func parseFile(t *testing.T, name string) (*Config, error) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return Parse(data, testEnv)
}

// errorLines splits a joined error into its lines.
func errorLines(err error) []string {
	if err == nil {
		return nil
	}
	return strings.Split(err.Error(), "\n")
}

func TestGoodConfig(t *testing.T) {
	c, err := parseFile(t, "good.yml")
	if err != nil {
		t.Fatalf("good.yml: %v", err)
	}
	want := &Config{
		RulesVersion: "1",
		Kafka:        Kafka{Brokers: []string{"127.0.0.1:9092"}, Group: "recon", ClientID: "recon", MaxRecordBytes: 1 << 20},
		State:        State{Dir: "./recon-data"},
		HTTP:         HTTP{Listen: "127.0.0.1:8080"},
		Digest:       Digest{Key: testKey},
		Outputs:      Outputs{Divergences: "recon.divergences", Repairs: "recon.repairs", DLQ: "recon.dlq", Audit: "recon.audit", Format: "json"},
		Outbox:       Outbox{MaxBytes: 256 << 20},
		Datasets: []Dataset{{
			Name:   "orders",
			Key:    []string{"id"},
			Window: Duration(30 * time.Second),
			Source: System{Name: "postgres", Topic: "pg.public.orders", Format: "debezium-json", Version: "lsn"},
			Targets: []System{{Name: "warehouse", Topic: "wh.public.orders", Format: "debezium-json",
				Version: "offset", Lineage: "field:_src_lsn", Rename: map[string]string{"order_id": "id"}}},
			Compare: Compare{Ignore: []string{"updated_at"},
				Types: map[string]string{"amount": "decimal(2)", "created_at": "timestamp"}},
			Repair: Repair{Mode: "auto", AutoKinds: []string{"missing", "lagging", "orphan"}, Payload: "full", MaxPerMinute: 600,
				MaxDivergentRatio: ptr(0.1)},
		}},
		ShutdownTimeout: Duration(30 * time.Second),
	}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("good.yml decoded to\n%+v\nwant\n%+v", c, want)
	}

	ds, ok := c.Dataset("orders")
	if !ok || ds != &c.Datasets[0] {
		t.Fatalf("Dataset(orders) = %p, %v; want the first dataset", ds, ok)
	}
	if tg, ok := ds.Target("warehouse"); !ok || tg.Topic != "wh.public.orders" {
		t.Errorf("Target(warehouse) = %+v, %v", tg, ok)
	}
	if _, ok := ds.Target("postgres"); ok {
		t.Error("Target(postgres) found the source; the source is not a target")
	}
	if _, ok := c.Dataset("customers"); ok {
		t.Error("Dataset(customers) found a dataset that does not exist")
	}
	if d, s, ok := c.TopicOwner("wh.public.orders"); !ok || d.Name != "orders" || s.Name != "warehouse" {
		t.Errorf("TopicOwner(wh.public.orders) = %v, %v, %v", d, s, ok)
	}
	if got := c.InputTopics(); !slices.Equal(got, []string{"pg.public.orders", "wh.public.orders"}) {
		t.Errorf("InputTopics() = %v", got)
	}
}

// A config that says only what is required gets every default.
func TestDefaults(t *testing.T) {
	minimal := `
digest: {key: "${RECON_DIGEST_KEY}"}
datasets:
  - name: orders
    key: [id]
    source: {name: pg, topic: a, format: flat-json, version: "field:version"}
    targets: [{name: cache, topic: b, format: flat-json, version: offset}]
`
	c, err := Parse([]byte(minimal), testEnv)
	if err != nil {
		t.Fatal(err)
	}
	ds := c.Datasets[0]
	for _, tc := range []struct {
		setting   string
		got, want any
	}{
		{"rules_version", c.RulesVersion, "1"},
		{"kafka.brokers", c.Kafka.Brokers, []string{"127.0.0.1:9092"}},
		{"kafka.group", c.Kafka.Group, "recon"},
		{"kafka.client_id", c.Kafka.ClientID, "recon"},
		{"kafka.max_record_bytes", c.Kafka.MaxRecordBytes, 1 << 20},
		{"state.dir", c.State.Dir, "./recon-data"},
		{"shutdown_timeout", c.ShutdownTimeout, Duration(30 * time.Second)},
		{"kafka.instance_id", c.Kafka.InstanceID, ""},
		{"http.listen", c.HTTP.Listen, "127.0.0.1:8080"},
		{"outputs.divergences", c.Outputs.Divergences, "recon.divergences"},
		{"outputs.repairs", c.Outputs.Repairs, "recon.repairs"},
		{"outputs.dlq", c.Outputs.DLQ, "recon.dlq"},
		{"outputs.audit", c.Outputs.Audit, ""},
		{"outputs.format", c.Outputs.Format, "json"},
		{"outbox.max_bytes", c.Outbox.MaxBytes, int64(256 << 20)},
		{"window", ds.Window, Duration(30 * time.Second)},
		{"source_complete", ds.SourceComplete, false},
		{"repair.mode", ds.Repair.Mode, "dry-run"},
		{"repair.auto_kinds", ds.Repair.AutoKinds, []string{"missing", "lagging", "orphan"}},
		{"repair.payload", ds.Repair.Payload, "full"},
		{"repair.max_per_minute", ds.Repair.MaxPerMinute, 600},
		{"repair.max_divergent_ratio", *ds.Repair.MaxDivergentRatio, 0.1},
		{"compare.float_tolerance", ds.Compare.FloatTolerance, 0.0},
		{"compare.case_insensitive", ds.Compare.CaseInsensitive, false},
	} {
		if !reflect.DeepEqual(tc.got, tc.want) {
			t.Errorf("%s = %v, want %v", tc.setting, tc.got, tc.want)
		}
	}

	// Idempotent, and datasets do not share the default slice.
	before := *c
	c.ApplyDefaults()
	if !reflect.DeepEqual(*c, before) {
		t.Error("a second ApplyDefaults changed the config")
	}
	two := Config{Datasets: []Dataset{{}, {}}}
	two.ApplyDefaults()
	two.Datasets[0].Repair.AutoKinds[0] = "conflict"
	if two.Datasets[1].Repair.AutoKinds[0] != "missing" {
		t.Error("datasets share their default auto_kinds")
	}
}

func TestEnvExpansion(t *testing.T) {
	text := `
kafka:
  brokers: ["${BROKER}", $BROKER2]
  sasl: {mechanism: PLAIN, username: $USER_NAME, password: "pa$$word-${PASSWORD}"}
state: {dir: "${STATE_DIR}/recon"}
digest: {key: ${RECON_DIGEST_KEY}}
http: {listen: "${HTTP_HOST}:8080"}
datasets:
  - name: orders
    key: [id]
    source: {name: pg, topic: a, format: flat-json, version: lsn}
    targets: [{name: cache, topic: b, format: flat-json, version: offset}]
`
	c, err := Parse([]byte(text), env(map[string]string{
		"RECON_DIGEST_KEY": testKey,
		"BROKER":           "kafka-1:9092",
		"BROKER2":          "kafka-2:9092",
		"USER_NAME":        "recon",
		"PASSWORD":         "s3cret",
		"STATE_DIR":        "/var/lib",
		// HTTP_HOST is unset: it expands to "", and ":8080" is a valid listen address.
	}))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ got, want string }{
		{strings.Join(c.Kafka.Brokers, ","), "kafka-1:9092,kafka-2:9092"},
		{c.Kafka.SASL.Username, "recon"},
		{c.Kafka.SASL.Password, "pa$word-s3cret"},
		{c.State.Dir, "/var/lib/recon"},
		{c.Digest.Key, testKey},
		{c.HTTP.Listen, ":8080"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}

	// Without the variable, the required key is reported, and by its name.
	_, err = Parse([]byte(text), env(nil))
	if err == nil || !strings.Contains(err.Error(), "digest.key: must be at least 16 bytes; set RECON_DIGEST_KEY") {
		t.Errorf("Parse without RECON_DIGEST_KEY: %v", err)
	}
	if err != nil && strings.Contains(err.Error(), "password") {
		t.Errorf("an unset variable in a set value is not an error of its own: %v", err)
	}
}

// One file per error, Prometheus style: each holds exactly one mistake, and
// the one error reported names it.
var badFiles = []struct {
	file string
	want string
}{
	{"unknown_field", "line 3: kafka.brokerz: unknown field; known fields: brokers, group, client_id, tls, sasl"},
	{"unknown_dataset_field", "line 5: datasets[0].windw: unknown field"},
	{"duration_bare_int", "line 5: datasets[0].window: 30: want a duration such as 30s"},
	{"duration_bad", "datasets[0].window: soon: want a duration such as 30s"},
	{"wrong_shape", "line 4: datasets[0].key: want a list, got \"id\""},
	{"not_an_int", "datasets[0].repair.max_per_minute: want an integer, got \"lots\""},
	{"syntax", "yaml: did not find expected ',' or ']'"},
	{"rules_version_space", `rules_version: "release 7": want printable characters without spaces`},
	{"two_documents", "line 8: a second YAML document"},
	{"no_datasets", "datasets: at least one dataset is required"},
	{"dataset_name", `line 3: datasets[0].name: "Orders" must match ^[a-z0-9][a-z0-9_.-]*$`},
	{"dataset_name_empty", "datasets[0].name: must be set"},
	{"dataset_duplicate", `datasets[1].name: "orders" is already the name of datasets[0]`},
	{"key_empty", "datasets[0].key: must list at least one field"},
	{"key_duplicate", `datasets[0].key[2]: duplicate field "id"`},
	{"window_negative", "datasets[0].window: must be > 0, got -5s"},
	{"no_targets", "datasets[0].targets: at least one target is required"},
	{"system_name", `datasets[0].targets[0].name: "Replica 1" must match`},
	{"system_duplicate", `datasets[0].targets[0].name: "postgres" is already the name of datasets[0].source`},
	{"topic_empty", "line 7: datasets[0].targets[0].topic: must be set"},
	{"topic_reused", `datasets[0].targets[1].topic: topic "replica.public.orders" is already read by datasets[0].targets[0]; one topic belongs to one system`},
	{"topic_reused_across_datasets", `datasets[1].source.topic: topic "pg.public.orders" is already read by datasets[0].source`},
	{"format_unknown", `datasets[0].targets[0].format: unknown format "debezium-xml": want debezium-json, debezium-avro, flat-json or flat-avro`},
	{"format_missing", "datasets[0].source.format: must be set: want debezium-json, debezium-avro, flat-json or flat-avro"},
	{"avro_needs_registry", "datasets[0].targets[0].format: debezium-avro needs schema_registry.url"},
	{"flat_avro_needs_registry", "datasets[0].source.format: flat-avro needs schema_registry.url"},
	{"outbox_max_bytes", "line 1: outbox.max_bytes: must be at least 65536 (64 KiB), got 4096"},
	{"max_record_bytes", "line 1: kafka.max_record_bytes: must be from 1 to 1073741824, got -1"},
	{"shutdown_timeout_negative", "shutdown_timeout: must be >= 0 (0 means 30s), got -1s"},
	{"instance_id_spaces", `kafka.instance_id: " recon-1": want no surrounding spaces and at most 249 characters`},
	{"version_unknown", `line 8: datasets[0].targets[1].version: unknown version "lsnx": want lsn, position, offset or field:<name>`},
	{"version_missing", "datasets[0].source.version: must be set: want lsn, position, offset or field:<name>"},
	{"lineage_unknown", `datasets[0].targets[0].lineage: unknown lineage "_src_lsn": want field:<name>`},
	{"lineage_on_source", "datasets[0].source.lineage: only a target has a lineage"},
	{"rename_collision", `datasets[0].targets[0].rename.order_id: "id" is also the new name of "oid"`},
	{"type_unknown", `datasets[0].compare.types.amount: unknown type "decimal(2"`},
	{"float_tolerance_negative", "datasets[0].compare.float_tolerance: must be a finite number >= 0, got -0.5"},
	{"ignore_key", `datasets[0].compare.ignore[1]: "id" is a key field`},
	{"case_key_duplicate", `datasets[0].key[1]: duplicate field "ID" (compare.case_insensitive`},
	{"case_ignore_key", `datasets[0].compare.ignore[0]: "ID" is a key field`},
	{"case_types_duplicate", `datasets[0].compare.types.amount: "amount" is also typed as "Amount"`},
	{"case_rename_collision", `datasets[0].targets[0].rename.order_id: "Order_Id" and "order_id" are one column under compare.case_insensitive`},
	{"repair_mode", `datasets[0].repair.mode: unknown mode "yolo": want off, dry-run, approve or auto`},
	{"repair_auto_kind", `datasets[0].repair.auto_kinds[1]: unknown kind "stale": want missing, lagging, orphan or conflict`},
	{"repair_payload", `datasets[0].repair.payload: unknown payload "diff": want full or reference`},
	{"repair_max_per_minute", "datasets[0].repair.max_per_minute: must be >= 0 (0 means 600), got -1"},
	{"repair_max_divergent_ratio", "datasets[0].repair.max_divergent_ratio: must be from 0 (off) to 1, got 1.5"},
	{"digest_key_unset", "line 1: digest.key: must be at least 16 bytes; set RECON_DIGEST_KEY"},
	{"digest_key_short", "digest.key: must be at least 16 bytes; set RECON_DIGEST_KEY"},
	{"outputs_duplicate", `outputs.repairs: topic "recon.out" is also outputs.divergences`},
	{"outputs_input", `outputs.dlq: topic "pg.public.orders" is also the input of datasets[0].source`},
	{"outputs_audit_duplicate", `outputs.audit: topic "recon.repairs" is also outputs.repairs`},
	{"outputs_audit_input", `outputs.audit: topic "replica.public.orders" is also the input of datasets[0].targets[0]`},
	{"outputs_format", `outputs.format: unknown format "protobuf": want json or avro`},
	{"outputs_avro_needs_registry", "outputs.format: avro needs schema_registry.url"},
	{"registry_url", "schema_registry.url: want an http:// or https:// URL"},
	{"broker_empty", "kafka.brokers[1]: must not be empty"},
	{"broker_url", `kafka.brokers[0]: "kafka://kafka-1:9092": want host:port, not a URL`},
	{"sasl_mechanism", `kafka.sasl.mechanism: unknown mechanism "GSSAPI": want PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512`},
	{"sasl_username", "kafka.sasl.username: must be set with mechanism SCRAM-SHA-512"},
	{"sasl_password_unset", "kafka.sasl.password: must be set with mechanism PLAIN"},
	{"sasl_without_mechanism", "kafka.sasl.mechanism: must be set when username or password is"},
	{"tls_cert_without_key", "kafka.tls.key_file: must be set with cert_file"},
	{"http_listen", `http.listen: "8080": want host:port such as 127.0.0.1:8080`},
	{"http_token_sha256", "line 3: http.tokens[0].sha256: want 64 hex digits, the SHA-256 of the token (printf %s \"$TOKEN\" | sha256sum), got 32 characters"},
	{"http_token_sha256_unset", "line 3: http.tokens[0].sha256: must be set: the SHA-256 of the token"},
	{"http_token_name_duplicate", `line 4: http.tokens[1].name: "alice" is already the name of http.tokens[0]`},
	{"http_token_name", `http.tokens[0].name: "alice smith" must match ^[A-Za-z0-9][A-Za-z0-9_.@+-]*$`},
	{"http_token_name_unset", "line 3: http.tokens[0].name: must be set"},
	{"http_token_hash_duplicate", "line 4: http.tokens[1].sha256: is also the hash of http.tokens[0]; each token needs its own"},
	{"http_token_role", `http.tokens[0].role: unknown role "root": want viewer, approver or admin`},
	{"http_token_role_unset", "http.tokens[0].role: must be set: want viewer, approver or admin"},
	{"http_tls_cert_without_key", "line 1: http.tls.key_file: must be set with cert_file"},
	{"http_tls_key_without_cert", "line 1: http.tls.cert_file: must be set with key_file"},
}

// API tokens and the listener's TLS are read as written; a token's hash may
// be written in either case.
func TestHTTPTokens(t *testing.T) {
	c, err := Parse([]byte(`
http:
  listen: 127.0.0.1:8443
  tokens:
    - {name: alice, sha256: 2BB80D537B1DA3E38BD30361AA855686BDE0EACD7162FEF6A25FE97BF527A25B, role: approver}
    - {name: ci@example.com, sha256: 81b637d8fcd2c6da6359e6963113a1170de795e4b725b84d1e0b4cfd9ec58ce9, role: viewer}
    - {name: ops, sha256: 0000000000000000000000000000000000000000000000000000000000000001, role: admin}
  tls: {cert_file: /etc/recon/tls.crt, key_file: /etc/recon/tls.key}
digest: {key: "${RECON_DIGEST_KEY}"}
datasets:
  - name: orders
    key: [id]
    source: {name: postgres, topic: pg.public.orders, format: debezium-json, version: lsn}
    targets: [{name: replica, topic: replica.public.orders, format: debezium-json, version: lsn}]
`), testEnv)
	if err != nil {
		t.Fatal(err)
	}
	want := HTTP{
		Listen: "127.0.0.1:8443",
		Tokens: []HTTPToken{
			{Name: "alice", SHA256: "2BB80D537B1DA3E38BD30361AA855686BDE0EACD7162FEF6A25FE97BF527A25B", Role: RoleApprover},
			{Name: "ci@example.com", SHA256: "81b637d8fcd2c6da6359e6963113a1170de795e4b725b84d1e0b4cfd9ec58ce9", Role: RoleViewer},
			{Name: "ops", SHA256: "0000000000000000000000000000000000000000000000000000000000000001", Role: RoleAdmin},
		},
		TLS: HTTPTLS{CertFile: "/etc/recon/tls.crt", KeyFile: "/etc/recon/tls.key"},
	}
	if !reflect.DeepEqual(c.HTTP, want) {
		t.Errorf("http = %+v\nwant %+v", c.HTTP, want)
	}
	if !c.HTTP.TLS.Enabled() {
		t.Error("TLS not enabled with both files set")
	}
}

func TestBadConfigs(t *testing.T) {
	for _, tc := range badFiles {
		t.Run(tc.file, func(t *testing.T) {
			c, err := parseFile(t, tc.file+".bad.yml")
			if err == nil {
				t.Fatalf("no error; config: %+v", c)
			}
			lines := errorLines(err)
			if len(lines) != 1 {
				t.Errorf("want exactly one error, got %d:\n%v", len(lines), err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error\n  %v\ndoes not contain\n  %s", err, tc.want)
			}
			if strings.Contains(err.Error(), testKey) || strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error leaks a secret: %v", err)
			}
		})
	}
}

// Every *.bad.yml has its row in badFiles, so none is silently untested.
func TestBadConfigsListed(t *testing.T) {
	files, err := filepath.Glob("testdata/*.bad.yml")
	if err != nil {
		t.Fatal(err)
	}
	listed := map[string]bool{}
	for _, tc := range badFiles {
		listed[tc.file+".bad.yml"] = true
	}
	for _, f := range files {
		if !listed[filepath.Base(f)] {
			t.Errorf("%s has no row in badFiles", f)
		}
	}
	if len(files) != len(badFiles) {
		t.Errorf("%d bad files, %d rows in badFiles", len(files), len(badFiles))
	}
}

func TestSeveralProblems(t *testing.T) {
	_, err := parseFile(t, "several_problems.yml")
	want := []string{
		"line 2: kafka.brokers[0]: must not be empty",
		"kafka.sasl.username: must be set with mechanism PLAIN",
		"kafka.sasl.password: must be set with mechanism PLAIN",
		`line 3: http.listen: "localhost": want host:port`,
		"digest.key: must be at least 16 bytes",
		`line 6: datasets[0].name: "Orders" must match`,
		`line 7: datasets[0].key[1]: duplicate field "id"`,
		"line 8: datasets[0].window: must be > 0, got -1s",
		"line 9: datasets[0].source.lineage: only a target has a lineage",
		`line 11: datasets[0].targets[0].name: "pg" is already the name of datasets[0].source`,
		`line 11: datasets[0].targets[0].topic: topic "t1" is already read by datasets[0].source`,
		`datasets[0].targets[0].format: unknown format "csv"`,
		`datasets[0].targets[0].version: unknown version "lsnx"`,
		`line 12: datasets[0].compare.ignore[0]: "id" is a key field`,
		`datasets[0].compare.types.amount: unknown type "money"`,
		"datasets[0].compare.float_tolerance: must be a finite number >= 0, got -1",
		`line 13: datasets[0].repair.mode: unknown mode "sometimes"`,
		`datasets[0].repair.auto_kinds[0]: unknown kind "everything"`,
		`datasets[0].repair.payload: unknown payload "half"`,
		"datasets[0].repair.max_per_minute: must be >= 0 (0 means 600), got -5",
		`line 4: outputs.repairs: topic "recon.divergences" is also outputs.divergences`,
	}
	lines := errorLines(err)
	if len(lines) != len(want) {
		t.Errorf("got %d errors, want %d:\n%v", len(lines), len(want), err)
	}
	for _, w := range want {
		if !slices.ContainsFunc(lines, func(l string) bool { return strings.Contains(l, w) }) {
			t.Errorf("missing error %q in\n%v", w, err)
		}
	}

	var fe *FieldError
	if !errors.As(err, &fe) || fe.Path != "kafka.brokers[0]" || fe.Line != 2 {
		t.Errorf("errors.As(*FieldError) = %+v; want the first problem, kafka.brokers[0] on line 2", fe)
	}
}

// Several unknown fields are all reported too, before any validation.
func TestSeveralUnknownFields(t *testing.T) {
	text := "kafak: {}\nstate: {dri: x}\ndatasets:\n  - {name: a, windo: 3s, key: 5}\n"
	err := func() error { _, err := Parse([]byte(text), nil); return err }()
	want := []string{
		"line 1: kafak: unknown field",
		"line 2: state.dri: unknown field; known fields: dir",
		"line 4: datasets[0].windo: unknown field",
		`line 4: datasets[0].key: want a list, got "5"`,
	}
	lines := errorLines(err)
	if len(lines) != len(want) {
		t.Errorf("got %d errors, want %d:\n%v", len(lines), len(want), err)
	}
	for i := range min(len(lines), len(want)) {
		if !strings.HasPrefix(lines[i], want[i]) {
			t.Errorf("error %d = %q, want it to start with %q", i, lines[i], want[i])
		}
	}
}

// Validate alone works on a Config built in code: no lines, and a setting
// with a default but left empty is reported rather than silently defaulted.
func TestValidateWithoutDefaults(t *testing.T) {
	c := Config{Digest: Digest{Key: testKey}}
	err := c.Validate()
	for _, w := range []string{
		"kafka.brokers: at least one broker is required",
		"kafka.group: must be set",
		"kafka.client_id: must be set",
		"state.dir: must be set",
		"http.listen: must be set",
		"outputs.divergences: must be set",
		"outputs.repairs: must be set",
		"outputs.dlq: must be set",
		"outputs.format: must be set: want json or avro",
		"datasets: at least one dataset is required",
	} {
		if !slices.ContainsFunc(errorLines(err), func(l string) bool { return strings.HasPrefix(l, w) }) {
			t.Errorf("Validate() = %v\nwant a line starting with %q", err, w)
		}
	}
	if err != nil && strings.Contains(err.Error(), "line ") {
		t.Errorf("Validate alone cannot know lines: %v", err)
	}
}

func TestLoad(t *testing.T) {
	t.Setenv("RECON_DIGEST_KEY", testKey)
	if _, err := Load("testdata/good.yml"); err != nil {
		t.Fatalf("Load(good.yml): %v", err)
	}
	_, err := Load("testdata/several_problems.yml")
	for _, line := range errorLines(err) {
		if !strings.HasPrefix(line, "testdata/several_problems.yml: ") {
			t.Errorf("error line does not name the file: %q", line)
		}
	}
	var fe *FieldError
	if !errors.As(err, &fe) {
		t.Errorf("Load's errors do not unwrap to *FieldError: %v", err)
	}
	if _, err := Load("testdata/missing.yml"); !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "testdata/missing.yml") {
		t.Errorf("Load(missing.yml) = %v; want a not-exist error naming the file", err)
	}
}

// The example shipped at the repository root is valid as soon as the key is set.
func TestExampleConfig(t *testing.T) {
	t.Setenv("RECON_DIGEST_KEY", testKey)
	c, err := Load("../recon.example.yaml")
	if err != nil {
		t.Fatalf("recon.example.yaml: %v", err)
	}
	ds, ok := c.Dataset("orders")
	if !ok {
		t.Fatal("no dataset orders")
	}
	replica, ok := ds.Target("replica")
	if !ok || replica.Topic != "replica.public.orders" || replica.Lineage != "field:_src_lsn" || replica.Version != "lsn" {
		t.Errorf("replica = %+v", replica)
	}
	if ds.Source.Topic != "pg.public.orders" || ds.Repair.Mode != "auto" || ds.Compare.Types["amount"] != "decimal(2)" {
		t.Errorf("orders = %+v", ds)
	}

	t.Setenv("RECON_DIGEST_KEY", "")
	if _, err := Load("../recon.example.yaml"); err == nil || !strings.Contains(err.Error(), "set RECON_DIGEST_KEY") {
		t.Errorf("recon.example.yaml without RECON_DIGEST_KEY: %v", err)
	}
}

func TestDuration(t *testing.T) {
	for _, tc := range []struct {
		yaml string
		want time.Duration
	}{
		{"30s", 30 * time.Second},
		{"1m30s", 90 * time.Second},
		{"500ms", 500 * time.Millisecond},
		{`"2h"`, 2 * time.Hour},
	} {
		var d Duration
		if err := yaml.Unmarshal([]byte(tc.yaml), &d); err != nil || d.D() != tc.want {
			t.Errorf("unmarshal %s = %v, %v; want %v", tc.yaml, d, err, tc.want)
		}
		out, err := yaml.Marshal(d)
		if err != nil {
			t.Fatal(err)
		}
		var back Duration
		if err := yaml.Unmarshal(out, &back); err != nil || back != d {
			t.Errorf("round trip of %v through %q = %v, %v", d, out, back, err)
		}
	}
	for _, bad := range []string{"30", "1.5", "soon", `""`, "[30s]"} {
		var d Duration
		err := yaml.Unmarshal([]byte(bad), &d)
		if err == nil || !strings.Contains(err.Error(), "want a duration such as 30s") {
			t.Errorf("unmarshal %s: %v; want a duration error", bad, err)
		}
	}
	var d Duration
	if err := yaml.Unmarshal([]byte("30"), &d); err == nil || !strings.Contains(err.Error(), "line 1: 30: want a duration such as 30s") {
		t.Errorf("unmarshal 30: %v", err)
	}
}

// A whole config survives Marshal then Parse unchanged: durations included.
func TestConfigRoundTrip(t *testing.T) {
	c, err := parseFile(t, "good.yml")
	if err != nil {
		t.Fatal(err)
	}
	c.Datasets[0].Window = Duration(90*time.Second + 500*time.Millisecond)
	out, err := yaml.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), "window: 1m30.5s") {
		t.Errorf("window not written as a duration:\n%s", out)
	}
	back, err := Parse(out, nil)
	if err != nil {
		t.Fatalf("parse marshalled config: %v\n%s", err, out)
	}
	// Absent and empty lists and maps decode differently, so compare what
	// the two configs write.
	again, err := yaml.Marshal(back)
	if err != nil {
		t.Fatal(err)
	}
	if string(again) != string(out) {
		t.Errorf("round trip changed the config:\n%s\nwant\n%s", again, out)
	}
}

func TestRedacted(t *testing.T) {
	c, err := parseFile(t, "good.yml")
	if err != nil {
		t.Fatal(err)
	}
	c.Kafka.SASL = SASL{Mechanism: "PLAIN", Username: "recon", Password: "hunter2"}
	c.SchemaRegistry.URL = "https://recon:hunter2@registry:8081"
	out, err := yaml.Marshal(c.Redacted())
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), testKey) || strings.Contains(string(out), "hunter2") {
		t.Errorf("Redacted leaks a secret:\n%s", out)
	}
	if c.Digest.Key != testKey || c.Kafka.SASL.Password != "hunter2" {
		t.Error("Redacted changed the original")
	}
}

// With compare.case_insensitive, names that differ only in case are one
// column: accepted where they name the same thing, and without the setting
// they stay distinct columns, as before.
func TestCaseInsensitiveCompare(t *testing.T) {
	text := `
digest: {key: "${RECON_DIGEST_KEY}"}
datasets:
  - name: orders
    key: [Tenant_ID, id]
    compare: {case_insensitive: %v, ignore: [Updated_At], types: {AMOUNT: "decimal(2)", ref: uuid, created_at: timestamp_ms}}
    source: {name: postgres, topic: pg.public.orders, format: debezium-json, version: lsn}
    targets:
      - {name: replica, topic: replica.public.orders, format: flat-json, version: offset,
         rename: {ORDER_ID: ID, TENANT: tenant_id}}
`
	for _, on := range []bool{true, false} {
		c, err := Parse([]byte(fmt.Sprintf(text, on)), testEnv)
		if err != nil {
			t.Fatalf("case_insensitive %v: %v", on, err)
		}
		if got := c.Datasets[0].Compare.CaseInsensitive; got != on {
			t.Errorf("case_insensitive decoded as %v, want %v", got, on)
		}
	}
	// Without the setting, [id, ID] are two different key columns.
	dup := strings.Replace(text, "key: [Tenant_ID, id]", "key: [id, ID]", 1)
	if _, err := Parse([]byte(fmt.Sprintf(dup, false)), testEnv); err != nil {
		t.Errorf("[id, ID] without case_insensitive: %v", err)
	}
	if _, err := Parse([]byte(fmt.Sprintf(dup, true)), testEnv); err == nil || !strings.Contains(err.Error(), `duplicate field "ID"`) {
		t.Errorf("[id, ID] with case_insensitive: err = %v, want a duplicate", err)
	}
}

func ptr[T any](v T) *T { return &v }

// An explicit 0 turns the ratio trigger off; it is not replaced by the default.
func TestMaxDivergentRatioZeroIsOff(t *testing.T) {
	text := `
digest: {key: "${RECON_DIGEST_KEY}"}
datasets:
  - name: orders
    key: [id]
    repair: {max_divergent_ratio: 0}
    source: {name: pg, topic: a, format: flat-json, version: offset}
    targets: [{name: cache, topic: b, format: flat-json, version: offset}]
`
	c, err := Parse([]byte(text), testEnv)
	if err != nil {
		t.Fatal(err)
	}
	if r := c.Datasets[0].Repair.MaxDivergentRatio; r == nil || *r != 0 {
		t.Fatalf("max_divergent_ratio = %v, want 0", r)
	}
}

// shutdown_timeout and kafka.instance_id are read as written.
func TestShutdownTimeoutAndInstanceID(t *testing.T) {
	c, err := Parse([]byte(`
kafka: {instance_id: recon-1}
shutdown_timeout: 5s
digest: {key: "${RECON_DIGEST_KEY}"}
datasets:
  - name: orders
    key: [id]
    source: {name: postgres, topic: pg.public.orders, format: debezium-json, version: lsn}
    targets: [{name: replica, topic: replica.public.orders, format: debezium-json, version: lsn}]
`), testEnv)
	if err != nil {
		t.Fatal(err)
	}
	if c.ShutdownTimeout.D() != 5*time.Second || c.Kafka.InstanceID != "recon-1" {
		t.Fatalf("shutdown_timeout %s, instance_id %q; want 5s and recon-1", c.ShutdownTimeout, c.Kafka.InstanceID)
	}
}
