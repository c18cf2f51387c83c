package broker

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/sr"
)

// srClient talks to url without keep-alive connections, which would outlive
// the test (goleak).
func srClient(t *testing.T, url string) *sr.Client {
	t.Helper()
	cl, err := sr.NewClient(sr.URLs(url), sr.HTTPClient(&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}))
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

// TestSchemaRegistry: a registry served beside the broker takes a schema over
// HTTP, hands it back by id, and stops with the broker.
func TestSchemaRegistry(t *testing.T) {
	b, err := Start(Options{SchemaRegistry: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	url := b.SchemaRegistryURL()
	if !strings.HasPrefix(url, "http://127.0.0.1:") || strings.HasSuffix(url, ":0") {
		t.Fatalf("SchemaRegistryURL() = %q, want http://127.0.0.1:<bound port>", url)
	}
	ctx := testCtx(t)
	cl := srClient(t, url)
	const schema = `{"type":"record","name":"Key","namespace":"pg.public.orders","fields":[{"name":"id","type":"long"}]}`
	created, err := cl.CreateSchema(ctx, "pg.public.orders-key", sr.Schema{Schema: schema})
	if err != nil {
		t.Fatalf("register: %v", err)
	}
	got, err := cl.SchemaByID(ctx, created.ID)
	if err != nil || got.Schema != schema {
		t.Fatalf("SchemaByID(%d) = %q, %v; want the registered schema", created.ID, got.Schema, err)
	}
	var re *sr.ResponseError
	if _, err := cl.SchemaByID(ctx, created.ID+1); !errors.As(err, &re) || re.ErrorCode != sr.ErrSchemaNotFound.Code {
		t.Fatalf("unknown id: %v, want error code 40403", err)
	}

	if err := b.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if _, err := cl.SchemaByID(ctx, created.ID); err == nil {
		t.Fatal("the registry still answers after Close")
	}
}

func TestSchemaRegistryNone(t *testing.T) {
	b := start(t, Options{})
	if url := b.SchemaRegistryURL(); url != "" {
		t.Errorf("SchemaRegistryURL() = %q without Options.SchemaRegistry, want \"\"", url)
	}
}

func TestSchemaRegistryBadAddress(t *testing.T) {
	taken := start(t, Options{SchemaRegistry: "127.0.0.1:0"}).SchemaRegistryURL()
	for addr, want := range map[string]error{
		"8081":                               ErrBadListen,
		strings.TrimPrefix(taken, "http://"): nil, // in use: a listen error
		"127.0.0.1:http-alt":                 ErrBadListen,
	} {
		b, err := Start(Options{SchemaRegistry: addr})
		if err == nil {
			b.Close()
			t.Errorf("Start with schema registry %q succeeded", addr)
			continue
		}
		if want != nil && !errors.Is(err, want) || !strings.Contains(err.Error(), "schema registry") {
			t.Errorf("schema registry %q: %v, want %v naming the schema registry", addr, err, want)
		}
	}
}
