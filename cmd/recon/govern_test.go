package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/recon-dev/recon/api"
	"github.com/recon-dev/recon/broker"
)

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// startRecon runs `recon run` on a fresh broker with a dataset in
// repair.mode approve, tokens vera (viewer), alice (approver) and root
// (admin), until the test ends; it returns the API's URL and a producer of
// source rows.
func startRecon(t *testing.T) (server string, source func(id int)) {
	t.Helper()
	b, err := broker.Start(broker.Options{Topics: []string{"pg.orders", "rp.orders"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	listen := freeAddr(t)
	dir := t.TempDir()
	text := fmt.Sprintf(`
kafka: {brokers: [%s], group: recon-cli-test}
state: {dir: %s}
http:
  listen: %s
  tokens:
    - {name: vera, sha256: %s, role: viewer}
    - {name: alice, sha256: %s, role: approver}
    - {name: root, sha256: %s, role: admin}
digest: {key: cli-test-digest-key-0123456789}
datasets:
  - name: orders
    key: [id]
    window: 1s
    source: {name: postgres, topic: pg.orders, format: debezium-json, version: lsn}
    targets:
      - {name: replica, topic: rp.orders, format: debezium-json, version: lsn}
    repair: {mode: approve, max_divergent_ratio: 0}
`, b.Addr(), filepath.Join(dir, "state"), listen, sha256Hex("vera-secret"), sha256Hex("alice-secret"), sha256Hex("root-secret"))
	cfg := filepath.Join(dir, "recon.yaml")
	if err := os.WriteFile(cfg, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	code := make(chan int, 1)
	errb := newSyncBuffer()
	go func() { code <- run(ctx, []string{"run", "-c", cfg, "--log-format", "text"}, io.Discard, errb) }()
	t.Cleanup(func() {
		cancel()
		select {
		case c := <-code:
			if c != 0 {
				t.Errorf("recon run exit %d; stderr:\n%s", c, errb)
			}
		case <-time.After(20 * time.Second):
			t.Error("recon run did not stop")
		}
	})
	server = "http://" + listen
	waitUntil(t, "recon ready", func() bool {
		resp, err := http.Get(server + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	prod, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(prod.Close)
	source = func(id int) {
		now := time.Now().UnixMilli()
		value := fmt.Sprintf(`{"before":null,"after":{"id":%d,"status":"new"},"source":{"connector":"postgresql","ts_ms":%d,"lsn":%d},"op":"c","ts_ms":%d}`,
			id, now, 100+id, now)
		rec := &kgo.Record{Topic: "pg.orders", Key: []byte(fmt.Sprintf(`{"id":%d}`, id)), Value: []byte(value)}
		if err := prod.ProduceSync(context.Background(), rec).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	return server, source
}

func compactJSON(raw json.RawMessage) string {
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		return string(raw)
	}
	return b.String()
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		<-tick.C
	}
}

// tableRows returns the lines of a table whose first column is not the
// header.
func tableRows(out string) []string {
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if len(lines) == 0 {
		return nil
	}
	return lines[1:]
}

// The CLI over a running recon: list and inspect as tables and JSON,
// approve, reject and revert as the token's holder, one-line errors with
// the HTTP status for a weak token and a second revert.
func TestGovernanceCommands(t *testing.T) {
	server, source := startRecon(t)
	t.Setenv("RECON_SERVER", server)
	t.Setenv("RECON_TOKEN", "vera-secret")
	for id := 1; id <= 3; id++ {
		source(id)
	}
	var pending api.RepairPage
	waitUntil(t, "3 pending repairs", func() bool {
		code, out, _ := cli(t, "repairs", "list", "--state", "pending", "-o", "json")
		return code == 0 && json.Unmarshal([]byte(out), &pending) == nil && len(pending.Items) == 3
	})
	ids := map[string]string{}
	for _, r := range pending.Items {
		ids[r.Key] = r.ID
	}

	code, out, errOut := cli(t, "repairs", "list", "--state", "pending")
	rows := tableRows(out)
	if code != 0 || !strings.HasPrefix(out, "ID ") || len(rows) != 3 || !strings.Contains(rows[0], " orders ") || !strings.Contains(rows[0], " pending ") {
		t.Errorf("repairs list: exit %d\n%s%s", code, out, errOut)
	}
	code, out, errOut = cli(t, "repairs", "list", "--state", "pending", "--limit", "2")
	if code != 0 || len(tableRows(out)) != 2 || !strings.HasPrefix(errOut, "more: repeat with --cursor ") {
		t.Errorf("repairs list --limit 2: exit %d\n%s%s", code, out, errOut)
	}
	code, out, errOut = cli(t, "divergences", "list", "--state", "open", "--kind", "missing")
	if rows := tableRows(out); code != 0 || !strings.HasPrefix(out, "ID ") || len(rows) != 3 || !strings.Contains(rows[2], " replica ") {
		t.Errorf("divergences list: exit %d\n%s%s", code, out, errOut)
	}
	var divs api.DivergencePage
	code, out, _ = cli(t, "divergences", "list", "-o", "json", "--dataset", "orders")
	if err := json.Unmarshal([]byte(out), &divs); err != nil || code != 0 || len(divs.Items) != 3 || divs.Items[0].State != "open" {
		t.Errorf("divergences list -o json: exit %d, %v\n%s", code, err, out)
	}

	code, out, errOut = cli(t, "keys", "inspect", "orders", "1")
	for _, want := range []string{"dataset orders key 1", "SOURCE", "101", "TARGETS", "replica", "missing", ids["1"], "AUDIT", "repair_planned"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("keys inspect lacks %q: exit %d\n%s%s", want, code, out, errOut)
			break
		}
	}
	var x api.Explanation
	code, out, _ = cli(t, "keys", "inspect", "orders", "1", "-o", "json")
	if err := json.Unmarshal([]byte(out), &x); err != nil || code != 0 || x.Key != "1" || x.Source == nil || len(x.Repairs) != 1 || compactJSON(x.Fields) != `{"id":1}` {
		t.Errorf("keys inspect -o json: exit %d, %v\n%s", code, err, out)
	}
	if code, _, errOut := cli(t, "keys", "inspect", "orders", "404"); code != 1 || !strings.Contains(errOut, "recon keys inspect: 404 Not Found: key \"orders/404\": not found\n") {
		t.Errorf("keys inspect of an unknown key: exit %d, %q", code, errOut)
	}

	// A viewer may not decide.
	code, _, errOut = cli(t, "repairs", "approve", ids["1"])
	if code != 1 || errOut != "recon repairs approve: 403 Forbidden: token vera has role viewer; POST /api/v1/repairs/{id}/approve needs approver\n" {
		t.Errorf("viewer approves: exit %d, %q", code, errOut)
	}
	t.Setenv("RECON_TOKEN", "alice-secret")
	code, out, errOut = cli(t, "repairs", "approve", ids["1"])
	if code != 0 || out != fmt.Sprintf("repair %s approved by alice: published, upsert orders/replica key 1\n", ids["1"]) {
		t.Errorf("approve: exit %d, %q %q", code, out, errOut)
	}
	code, out, errOut = cli(t, "repairs", "reject", ids["2"], "--reason", "replica 2 is being rebuilt")
	if code != 0 || out != fmt.Sprintf("repair %s rejected by alice\n", ids["2"]) {
		t.Errorf("reject: exit %d, %q %q", code, out, errOut)
	}
	var rejected api.RepairPage
	code, out, _ = cli(t, "repairs", "list", "--state", "rejected", "-o", "json")
	if json.Unmarshal([]byte(out), &rejected); code != 0 || len(rejected.Items) != 1 || rejected.Items[0].Reason != "replica 2 is being rebuilt" {
		t.Errorf("rejected repairs: %s", out)
	}

	code, out, errOut = cli(t, "repairs", "revert", ids["1"], "--token", "root-secret")
	if code != 0 || !strings.HasPrefix(out, fmt.Sprintf("repair %s reverted by root: compensating repair ", ids["1"])) || !strings.HasSuffix(out, " (delete) published\n") {
		t.Errorf("revert: exit %d, %q %q", code, out, errOut)
	}
	code, _, errOut = cli(t, "repairs", "revert", ids["1"])
	if code != 1 || !strings.HasPrefix(errOut, fmt.Sprintf("recon repairs revert: 409 Conflict: cannot revert repair %s (reverted): it was reverted already", ids["1"])) || strings.Count(errOut, "\n") != 1 {
		t.Errorf("second revert: exit %d, %q", code, errOut)
	}
	code, out, _ = cli(t, "repairs", "show", ids["1"])
	if code != 0 || !strings.Contains(out, "state            reverted") || !strings.Contains(out, `"approved_by": "alice"`) {
		t.Errorf("repairs show: exit %d\n%s", code, out)
	}
	var shown api.Explanation
	code, out, _ = cli(t, "keys", "inspect", "orders", "1", "-o", "json")
	if json.Unmarshal([]byte(out), &shown); code != 0 || len(shown.Repairs) != 2 {
		t.Errorf("key 1 after the revert: %s", out)
	}

	code, out, errOut = cli(t, "audit", "verify")
	if code != 0 || !strings.HasPrefix(out, "OK: ") {
		t.Errorf("audit verify over the API: exit %d\n%s%s", code, out, errOut)
	}
	code, out, _ = cli(t, "audit", "list", "--limit", "1000")
	for _, want := range []string{" alice ", " approved ", " rejected ", " root ", " reverted "} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("audit list lacks %q:\n%s", want, out)
		}
	}
	if code, _, errOut := cli(t, "repairs", "approve"); code != 1 || !strings.Contains(errOut, "want ID, got 0 argument(s)") {
		t.Errorf("approve without an id: exit %d, %q", code, errOut)
	}
	if code, _, errOut := cli(t, "repairs", "list", "--state", "done"); code != 1 || !strings.Contains(errOut, `400 Bad Request: state "done"`) {
		t.Errorf("bad state: exit %d, %q", code, errOut)
	}
}
