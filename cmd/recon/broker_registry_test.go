package main

import (
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/sr"
)

var registryLine = regexp.MustCompile(`(?m)^schema registry listening on (http://\S+)$`)

// TestBrokerCommandSchemaRegistry: --schema-registry serves a registry beside
// the broker, announced before the broker's line, that takes and returns
// schemas, and stops with the command.
func TestBrokerCommandSchemaRegistry(t *testing.T) {
	addr, _, out, errb, cancel, code := startBrokerCmd(t, "--listen", "127.0.0.1:0", "--schema-registry", "127.0.0.1:0")
	m := registryLine.FindStringSubmatch(out.String())
	if m == nil || strings.HasSuffix(m[1], ":0") {
		t.Fatalf("stdout %q: want a schema registry line with the bound port before the broker's", out.String())
	}
	url := m[1]
	cl, err := sr.NewClient(sr.URLs(url), sr.HTTPClient(&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}))
	if err != nil {
		t.Fatal(err)
	}
	const schema = `{"type":"record","name":"Value","namespace":"pg.public.orders","fields":[{"name":"id","type":"long"}]}`
	created, err := cl.CreateSchema(t.Context(), "pg.public.orders-value", sr.Schema{Schema: schema})
	if err != nil {
		t.Fatalf("register: %v", err)
	}
	if got, err := cl.SchemaByID(t.Context(), created.ID); err != nil || got.Schema != schema {
		t.Fatalf("SchemaByID(%d) = %q, %v", created.ID, got.Schema, err)
	}

	cancel()
	select {
	case c := <-code:
		if c != 0 {
			t.Fatalf("exit code %d; stderr: %s", c, errb.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("recon broker did not stop")
	}
	want := "schema registry listening on " + url + "\nbroker listening on " + addr + " (in memory)\nbroker stopped\n"
	if out.String() != want {
		t.Errorf("stdout = %q, want %q", out.String(), want)
	}
	if _, err := cl.SchemaByID(t.Context(), created.ID); err == nil {
		t.Error("the registry still answers after the command stopped")
	}
}

func TestBrokerCommandSchemaRegistryBadAddress(t *testing.T) {
	out, errb := newSyncBuffer(), newSyncBuffer()
	if code := run(t.Context(), []string{"broker", "--listen", "127.0.0.1:0", "--schema-registry", "8081"}, out, errb); code != 1 {
		t.Errorf("exit code %d, want 1", code)
	}
	if want := "recon broker: schema registry: invalid listen address \"8081\": missing port in address\n"; errb.String() != want {
		t.Errorf("stderr = %q, want %q", errb.String(), want)
	}
}
