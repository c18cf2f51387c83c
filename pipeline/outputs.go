package pipeline

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/twmb/franz-go/pkg/sr"

	"github.com/recon-dev/recon/config"
	"github.com/recon-dev/recon/repair"
	"github.com/recon-dev/recon/schemas"
)

// registerTimeout bounds registering the output schemas at start.
const registerTimeout = 15 * time.Second

// outputEncoder returns how the publisher encodes the outbox's JSON events
// for outputs.format: nil for json; for avro, an encoder of the output
// schemas, registered under <topic>-value before anything is consumed, so
// that a registry that is down or refuses them (incompatible with the
// subject's versions) stops recon at start, not at its first verdict.
func outputEncoder(ctx context.Context, cfg *config.Config) (repair.Encoder, error) {
	switch cfg.Outputs.Format {
	case "", "json":
		return nil, nil
	case "avro":
	default:
		return nil, fmt.Errorf("outputs.format %q is not supported", cfg.Outputs.Format)
	}
	shown := cfg.Redacted().SchemaRegistry.URL
	cl, err := outputRegistryClient(cfg.SchemaRegistry.URL)
	if err != nil {
		return nil, fmt.Errorf("outputs.format avro: schema registry %s: %w", shown, err)
	}
	rctx, cancel := context.WithTimeout(ctx, registerTimeout)
	defer cancel()
	enc, err := schemas.RegisterOutputs(rctx, cl, schemas.OutputTopics{Divergences: cfg.Outputs.Divergences, Repairs: cfg.Outputs.Repairs})
	if err != nil {
		return nil, fmt.Errorf("outputs.format avro: schema registry %s: %w", shown, err)
	}
	return enc, nil
}

// outputRegistryClient is a registry client for rawURL; credentials in the
// URL become basic auth, so that no request or error carries them in a URL.
func outputRegistryClient(rawURL string) (*sr.Client, error) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, errors.New("want an http:// or https:// URL") // not echoed: it may hold a password
	}
	opts := []sr.ClientOpt{sr.UserAgent("recon"), sr.HTTPClient(&http.Client{Timeout: 5 * time.Second})}
	if u.User != nil {
		pass, _ := u.User.Password()
		opts = append(opts, sr.BasicAuth(u.User.Username(), pass))
		u.User = nil
	}
	return sr.NewClient(append(opts, sr.URLs(u.String()))...)
}

// millisClock stamps recon's times at millisecond precision. Avro outputs
// carry timestamp-millis, so with it the outbox's JSON and the published Avro
// hold the same instants: converting one into the other loses nothing.
func millisClock(now func() time.Time) func() time.Time {
	return func() time.Time { return now().Truncate(time.Millisecond) }
}
