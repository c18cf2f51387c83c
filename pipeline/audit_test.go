package pipeline

import (
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/recon-dev/recon/config"
	"github.com/recon-dev/recon/repair"
	"github.com/recon-dev/recon/state"
)

func parseDataset(t *testing.T, text string) config.Dataset {
	t.Helper()
	c, err := config.Parse([]byte(`digest: {key: "test-digest-key-0123456789"}
`+text), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	return c.Datasets[0]
}

func mustHash(t *testing.T, d config.Dataset) string {
	t.Helper()
	h, err := ConfigHash(d)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// The config hash follows what a dataset's config means, not how its file is
// written: styles, key order and spelled-out defaults do not change it, and a
// changed setting does.
func TestConfigHash(t *testing.T) {
	base := parseDataset(t, `
datasets:
  - name: orders
    key: [id]
    source: {name: pg, topic: pg.orders, format: debezium-json, version: lsn}
    targets: [{name: wh, topic: wh.orders, format: debezium-json, version: offset, rename: {b: y, a: x}}]
`)
	same := parseDataset(t, `
datasets:
  - targets:
      - version: offset
        format: debezium-json
        topic: wh.orders
        name: wh
        rename: {a: x, b: y}
    source: {topic: pg.orders, name: pg, version: lsn, format: debezium-json}
    key: [id]
    name: orders        # defaults spelled out
    window: 30s
    source_complete: false
    compare: {ignore: [], float_tolerance: 0}
    repair: {mode: dry-run, payload: full, auto_kinds: [missing, lagging, orphan], max_per_minute: 600,
             max_divergent_ratio: 0.1}
`)
	h := mustHash(t, base)
	if got := mustHash(t, same); got != h {
		t.Errorf("the same config written otherwise hashes to %s, not %s", got, h)
	}
	doc, err := canonicalDataset(base)
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"key":["id"],"name":"orders","repair":{"auto_kinds":["missing","lagging","orphan"],"max_divergent_ratio":0.1,"max_per_minute":600,"mode":"dry-run","payload":"full"},` +
		`"source":{"format":"debezium-json","name":"pg","topic":"pg.orders","version":"lsn"},` +
		`"targets":[{"format":"debezium-json","name":"wh","rename":{"a":"x","b":"y"},"topic":"wh.orders","version":"offset"}],"window":"30s"}`
	if string(doc) != want {
		t.Errorf("canonical JSON\n%s\nwant\n%s", doc, want)
	}
	for name, change := range map[string]func(*config.Dataset){
		"window":       func(d *config.Dataset) { d.Window = config.Duration(time.Minute) },
		"repair mode":  func(d *config.Dataset) { d.Repair.Mode = "auto" },
		"auto kinds":   func(d *config.Dataset) { d.Repair.AutoKinds = []string{"missing"} },
		"rename":       func(d *config.Dataset) { d.Targets[0].Rename = map[string]string{"a": "x"} },
		"ignore":       func(d *config.Dataset) { d.Compare.Ignore = []string{"updated_at"} },
		"tolerance":    func(d *config.Dataset) { d.Compare.FloatTolerance = 0.01 },
		"complete":     func(d *config.Dataset) { d.SourceComplete = true },
		"storm ratio":  func(d *config.Dataset) { r := 0.2; d.Repair.MaxDivergentRatio = &r },
		"target topic": func(d *config.Dataset) { d.Targets[0].Topic = "wh.orders.v2" },
	} {
		d := parseDataset(t, `
datasets:
  - name: orders
    key: [id]
    source: {name: pg, topic: pg.orders, format: debezium-json, version: lsn}
    targets: [{name: wh, topic: wh.orders, format: debezium-json, version: offset, rename: {b: y, a: x}}]
`)
		change(&d)
		if mustHash(t, d) == h {
			t.Errorf("changing %s leaves the hash unchanged", name)
		}
	}
}

// readTopic collects the records of one topic from the start.
func readTopic(t *testing.T, addr, topic string) func() []*kgo.Record {
	t.Helper()
	var (
		mu   sync.Mutex
		recs []*kgo.Record
	)
	consume(t, addr, []string{topic}, func(r *kgo.Record) {
		mu.Lock()
		recs = append(recs, r)
		mu.Unlock()
	})
	return func() []*kgo.Record {
		mu.Lock()
		defer mu.Unlock()
		return append([]*kgo.Record(nil), recs...)
	}
}

// A missing key, then its repair applied (and so verified): recon's
// decisions are audit records in a chain that verifies, while running and offline after it
// stopped, each stamped with the dataset's config hash as the events are, and
// mirrored in order to outputs.audit.
func TestAuditLogEndToEnd(t *testing.T) {
	h := newHarness(t, time.Second, "auto")
	h.cfg.Outputs.Audit = "recon.audit"
	h.cfg.RulesVersion = "2026-12-05"
	mirror := readTopic(t, h.broker.Addr(), h.cfg.Outputs.Audit)
	p, stop := h.start()
	cfgHash := mustHash(t, h.cfg.Datasets[0])

	r := row{ID: 1, Amount: "12.50", Status: "new", Created: created}
	h.source("c", 100, r)
	divs := h.waitOutputs(h.cfg.Outputs.Divergences, 1)
	if divs[0].Body["config_hash"] != cfgHash || divs[0].Body["rules_version"] != "2026-12-05" {
		t.Errorf("divergence event %v, want config_hash %s and rules_version 2026-12-05", divs[0].Body, cfgHash)
	}
	reps := h.waitOutputs(h.cfg.Outputs.Repairs, 1)
	if reps[0].Body["config_hash"] != cfgHash || reps[0].Body["rules_version"] != "2026-12-05" {
		t.Errorf("repair event %v, want config_hash %s", reps[0].Body, cfgHash)
	}
	h.target("c", 1, 100, r) // the repair, applied
	h.waitOutputs(h.cfg.Outputs.Divergences, 2)

	var recs []state.AuditRecord
	waitFor(t, 10*time.Second, "6 audit records", func() bool {
		var err error
		recs, err = p.Store().AuditRecords(0, 0)
		return err == nil && len(recs) >= 6
	})
	wantActions := []string{repair.AuditConfigChanged, repair.AuditOpened, repair.AuditRepairPlanned, repair.AuditPublished,
		repair.AuditResolved, repair.AuditVerified}
	if len(recs) != len(wantActions) {
		t.Fatalf("audit records %+v, want %v", recs, wantActions)
	}
	for i, rec := range recs {
		if rec.Action != wantActions[i] || rec.ConfigHash != cfgHash || rec.RulesVersion != "2026-12-05" || rec.Dataset != "orders" {
			t.Errorf("record %d: %+v", i, rec)
		}
		if i > 0 && (rec.Key != "1" || rec.Target != "warehouse" || rec.DivergenceID != divs[0].Body["id"]) {
			t.Errorf("record %d names %s/%s %s", i, rec.Target, rec.Key, rec.DivergenceID)
		}
	}
	if recs[2].RepairID != reps[0].Body["id"] || recs[2].Detail != "upsert repair to be published automatically" {
		t.Errorf("repair planned: %+v", recs[2])
	}
	if recs[3].RepairID != reps[0].Body["id"] || recs[3].Detail != "upsert repair published automatically (missing is in auto_kinds)" {
		t.Errorf("repair published: %+v", recs[3])
	}
	if v, err := p.Store().VerifyAudit(); err != nil || !v.OK() || v.Records != 6 || v.Head.Hash != recs[5].Hash {
		t.Fatalf("VerifyAudit while running: %+v, %v", v, err)
	}

	// The mirror holds the same records, in order.
	waitFor(t, 10*time.Second, "6 mirrored audit records", func() bool { return len(mirror()) >= 6 })
	for i, m := range mirror() {
		var got state.AuditRecord
		if err := json.Unmarshal(m.Value, &got); err != nil || got != recs[i] {
			t.Errorf("mirrored record %d: %s, %v; want %+v", i, m.Value, err, recs[i])
		}
	}

	// Offline, on the closed state dir.
	stop()
	ro, err := state.Open(h.cfg.State.Dir, state.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	if v, err := ro.VerifyAudit(); err != nil || !v.OK() || v.Records != 6 {
		t.Fatalf("VerifyAudit offline: %+v, %v", v, err)
	}
}
