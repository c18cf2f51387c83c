package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/recon-dev/recon/broker"
)

func writeConfig(t *testing.T, brokerAddr, listen string, extra string) string {
	t.Helper()
	dir := t.TempDir()
	text := fmt.Sprintf(`
kafka: {brokers: [%s], group: recon-cmd-test}
state: {dir: %s}
http: {listen: %s}
digest: {key: ${TEST_DIGEST_KEY}}
datasets:
  - name: orders
    key: [id]
    window: 1s
    source: {name: postgres, topic: pg.orders, format: debezium-json, version: lsn}
    targets:
      - {name: replica, topic: rp.orders, format: debezium-json, version: lsn}
%s`, brokerAddr, filepath.Join(dir, "state"), listen, extra)
	path := filepath.Join(dir, "recon.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// recon run serves its endpoints, reports ready once it joined its group,
// and stops cleanly with exit 0 when signalled.
func TestRunServesAndStopsCleanly(t *testing.T) {
	t.Setenv("TEST_DIGEST_KEY", "cmd-test-digest-key-0123456789")
	b, err := broker.Start(broker.Options{Topics: []string{"pg.orders", "rp.orders"}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	listen := freeAddr(t)
	cfg := writeConfig(t, b.Addr(), listen, "")

	ctx, cancel := context.WithCancel(context.Background())
	code := make(chan int, 1)
	errb := newSyncBuffer()
	go func() { code <- run(ctx, []string{"run", "-c", cfg, "--log-format", "text"}, io.Discard, errb) }()

	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + listen + path)
		if err != nil {
			return 0, ""
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	deadline := time.Now().Add(15 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if st, _ := get("/readyz"); st == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz never turned 200; stderr:\n%s", errb)
		}
		<-tick.C
	}
	if st, _ := get("/healthz"); st != http.StatusOK {
		t.Errorf("/healthz = %d", st)
	}
	st, metrics := get("/metrics")
	for _, name := range []string{"recon_outbox_records", "recon_breaker_state", "recon_state_keys", "recon_windows_waiting_watermark"} {
		if st != http.StatusOK || !strings.Contains(metrics, name) {
			t.Errorf("/metrics lacks %s", name)
		}
	}
	cancel()
	select {
	case c := <-code:
		if c != 0 {
			t.Fatalf("exit %d after SIGTERM; stderr:\n%s", c, errb)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("recon run did not stop")
	}
	if !strings.Contains(errb.String(), "recon stopped") {
		t.Errorf("no clean stop logged:\n%s", errb)
	}
}

// Bad config and an unreachable broker fail at start with one line.
func TestRunFailsAtStartWithOneLine(t *testing.T) {
	t.Setenv("TEST_DIGEST_KEY", "cmd-test-digest-key-0123456789")
	tests := []struct {
		name, cfg, want string
	}{
		{"unknown field", writeConfig(t, "127.0.0.1:9", "127.0.0.1:0", "bogus: 1\n"), "bogus: unknown field"},
		{"two problems", writeConfig(t, "127.0.0.1:9", "127.0.0.1:0", "outputs: {format: xml, dlq: pg.orders}\n"), "outputs"},
		{"unreachable broker", writeConfig(t, "127.0.0.1:9", "127.0.0.1:0", ""), "kafka unreachable"},
	}
	// The schema registry is checked once Kafka answers.
	b, err := broker.Start(broker.Options{Topics: []string{"pg.orders", "rp.orders"}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	tests = append(tests, struct{ name, cfg, want string }{"unreachable schema registry",
		writeConfig(t, b.Addr(), "127.0.0.1:0", "schema_registry: {url: \"http://"+freeAddr(t)+"\"}\noutputs: {format: avro}\n"), "schema registry"})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var errb bytes.Buffer
			if c := run(context.Background(), []string{"run", "-c", tt.cfg}, io.Discard, &errb); c != 1 {
				t.Fatalf("exit %d, want 1", c)
			}
			lines := strings.Split(strings.TrimSpace(errb.String()), "\n")
			last := lines[len(lines)-1]
			if !strings.HasPrefix(last, "recon run: ") || !strings.Contains(last, tt.want) {
				t.Fatalf("last stderr line %q, want one line about %q", last, tt.want)
			}
		})
	}
}
