package schemas

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/linkedin/goavro/v2"
	"github.com/twmb/franz-go/pkg/sr"
)

// Errors of Registry.Schema. Callers branch on them: the first two are
// answers about the schema id and never change, the last one says nothing
// about it and is worth retrying.
var (
	// ErrUnknownSchemaID means the registry answered that no schema has the
	// id (HTTP 404 with error code 40403).
	ErrUnknownSchemaID = errors.New("unknown schema id")
	// ErrUnusableSchema means the registry has the schema but recon cannot
	// read it: not Avro, with references, or text goavro rejects.
	ErrUnusableSchema = errors.New("unusable schema")
	// ErrRegistryUnavailable means the registry gave no answer about the id:
	// unreachable, timed out, 5xx, credentials rejected, or a reply that is
	// not the registry's (a 404 without its error code is a wrong URL or a
	// proxy, not an unknown id).
	ErrRegistryUnavailable = errors.New("schema registry unavailable")
)

// DefaultRegistryTimeout bounds one HTTP request to the registry.
const DefaultRegistryTimeout = 5 * time.Second

// RegistrySchema is one writer schema, parsed once.
type RegistrySchema struct {
	ID    int
	Text  string        // as registered
	Codec *goavro.Codec // safe for concurrent use
}

// Registry reads Avro writer schemas by id from a Confluent-compatible schema
// registry and caches them: a schema id never changes meaning, so each is
// fetched and parsed once, and concurrent callers asking for the same id share
// one request. Only answers are cached (a schema, or an unusable one); unknown
// ids and failures are asked again next time, since a registry that lags its
// leader may learn an id later. Safe for concurrent use.
type Registry struct {
	client  *sr.Client
	url     string // without credentials, for messages
	timeout time.Duration

	mu      sync.Mutex
	fetches map[int]*registryFetch
}

// registryFetch is one id's request, shared by everyone who asks while it
// runs; once done is closed, schema and err are set and never change.
type registryFetch struct {
	done   chan struct{}
	schema *RegistrySchema
	err    error
}

// RegistryOpt configures NewRegistry.
type RegistryOpt interface{ apply(*registryConfig) }

type registryConfig struct {
	timeout time.Duration
	httpcl  *http.Client
}

type registryOptFn func(*registryConfig)

func (f registryOptFn) apply(c *registryConfig) { f(c) }

// RegistryTimeout bounds each HTTP request to the registry (default
// DefaultRegistryTimeout). A request that takes longer fails with
// ErrRegistryUnavailable.
func RegistryTimeout(d time.Duration) RegistryOpt {
	return registryOptFn(func(c *registryConfig) { c.timeout = d })
}

// RegistryHTTPClient sets the HTTP client, e.g. for TLS settings (default: a
// plain client; each request is bounded by RegistryTimeout, not by the client).
func RegistryHTTPClient(cl *http.Client) RegistryOpt {
	return registryOptFn(func(c *registryConfig) { c.httpcl = cl })
}

// NewRegistry returns a client of the registry at rawURL (http or https).
// Credentials in the URL (https://user:pass@host) become basic auth and are
// kept out of every error message. Nothing is requested until Schema or Ping.
func NewRegistry(rawURL string, opts ...RegistryOpt) (*Registry, error) {
	cfg := registryConfig{timeout: DefaultRegistryTimeout, httpcl: &http.Client{}}
	for _, o := range opts {
		o.apply(&cfg)
	}
	if cfg.timeout <= 0 {
		return nil, fmt.Errorf("schema registry timeout %v: must be > 0", cfg.timeout)
	}
	if cfg.httpcl == nil {
		return nil, errors.New("schema registry: nil http client")
	}
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		// The URL is not echoed: it may hold a password.
		return nil, errors.New("schema registry url: want an http:// or https:// URL")
	}
	srOpts := []sr.ClientOpt{sr.HTTPClient(cfg.httpcl), sr.UserAgent("recon")}
	if u.User != nil {
		pass, _ := u.User.Password()
		srOpts = append(srOpts, sr.BasicAuth(u.User.Username(), pass))
		u.User = nil
	}
	srOpts = append(srOpts, sr.URLs(u.String()))
	cl, err := sr.NewClient(srOpts...)
	if err != nil {
		return nil, fmt.Errorf("schema registry client for %s: %w", u, err)
	}
	return &Registry{client: cl, url: u.String(), timeout: cfg.timeout, fetches: make(map[int]*registryFetch)}, nil
}

// URL is the registry's address without credentials.
func (r *Registry) URL() string { return r.url }

// Ping checks that the registry answers, so that a bad URL fails at start
// rather than at the first Avro record. Any answer but a 5xx or a refusal of
// the credentials counts.
func (r *Registry) Ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	var raw []byte
	err := r.client.Do(ctx, http.MethodGet, "/config", nil, &raw)
	var re *sr.ResponseError
	if err == nil || errors.As(err, &re) && re.StatusCode < 500 &&
		re.StatusCode != http.StatusUnauthorized && re.StatusCode != http.StatusForbidden {
		return nil
	}
	return fmt.Errorf("%w: %w", ErrRegistryUnavailable, err)
}

// Schema returns the writer schema with the given id. Errors wrap
// ErrUnknownSchemaID, ErrUnusableSchema or ErrRegistryUnavailable; a ctx done
// while waiting is ErrRegistryUnavailable too, as it says nothing about the id.
func (r *Registry) Schema(ctx context.Context, id int) (*RegistrySchema, error) {
	r.mu.Lock()
	f, running := r.fetches[id]
	if !running {
		f = &registryFetch{done: make(chan struct{})}
		r.fetches[id] = f
	}
	r.mu.Unlock()
	if !running {
		r.fetch(ctx, id, f)
	}
	select {
	case <-f.done:
		return f.schema, f.err
	case <-ctx.Done():
		return nil, fmt.Errorf("schema id %d: %w: %w", id, ErrRegistryUnavailable, context.Cause(ctx))
	}
}

// fetch runs in the first caller's goroutine; later callers wait on f.done.
func (r *Registry) fetch(ctx context.Context, id int, f *registryFetch) {
	f.schema, f.err = r.get(ctx, id)
	if f.err != nil && !errors.Is(f.err, ErrUnusableSchema) {
		r.mu.Lock()
		delete(r.fetches, id)
		r.mu.Unlock()
	}
	close(f.done)
}

func (r *Registry) get(ctx context.Context, id int) (*RegistrySchema, error) {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	s, err := r.client.SchemaByID(ctx, id)
	if err != nil {
		var re *sr.ResponseError
		if errors.As(err, &re) && re.ErrorCode == sr.ErrSchemaNotFound.Code {
			return nil, fmt.Errorf("schema id %d: %w (registry %s)", id, ErrUnknownSchemaID, r.url)
		}
		return nil, fmt.Errorf("fetching schema id %d from %s: %w: %w", id, r.url, ErrRegistryUnavailable, err)
	}
	codec, err := parseRegistrySchema(s)
	if err != nil {
		return nil, fmt.Errorf("schema id %d: %w: %w", id, ErrUnusableSchema, err)
	}
	return &RegistrySchema{ID: id, Text: s.Schema, Codec: codec}, nil
}

// parseRegistrySchema builds the codec of an Avro schema without references
// (Debezium's AvroConverter writes none).
func parseRegistrySchema(s sr.Schema) (codec *goavro.Codec, err error) {
	if s.Type != sr.TypeAvro { // the zero SchemaType is Avro, as the registry omits it
		return nil, fmt.Errorf("schema type %s: want AVRO", s.Type)
	}
	if len(s.References) > 0 {
		return nil, fmt.Errorf("schema references (%d) are not supported", len(s.References))
	}
	// goavro panics on some malformed schemas (a decimal without a scale
	// after one with a scale); the text comes from the network, so a panic
	// here is only a bad schema.
	defer func() {
		if p := recover(); p != nil {
			codec, err = nil, fmt.Errorf("goavro panicked parsing the schema: %v", p)
		}
	}()
	codec, err = goavro.NewCodec(s.Schema)
	if err != nil {
		return nil, fmt.Errorf("parsing the schema: %w", err)
	}
	return codec, nil
}
