package pipeline

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/recon-dev/recon/api"
	"github.com/recon-dev/recon/config"
)

// setupHTTP builds the API and the server, loads the listener's certificate
// and listens, so that a wrong address, port or certificate stops recon at
// start with one line. http.listen "-" disables HTTP: tools that embed
// recon (bench) need no endpoints.
func (p *Pipeline) setupHTTP() error {
	tokens, err := apiTokens(p.cfg.HTTP.Tokens)
	if err != nil {
		return err
	}
	if len(tokens) == 0 {
		p.log.Warn("http.tokens is empty: the API under /api answers 401 to every request")
	}
	apiHandler, err := api.New(api.Options{
		Tokens: tokens,
		Engine: p.engine,
		Store:  p.store,
		Logger: p.log.With("component", "api"),
	})
	if err != nil {
		return err
	}
	p.http = &http.Server{Handler: p.handler(apiHandler), ReadHeaderTimeout: 5 * time.Second}
	if t := p.cfg.HTTP.TLS; t.Enabled() {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return fmt.Errorf("http.tls: loading %s and %s: %w", t.CertFile, t.KeyFile, err)
		}
		p.http.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
		p.httpTLS = true
	}
	if p.cfg.HTTP.Listen == "-" {
		return nil
	}
	p.listener, err = net.Listen("tcp", p.cfg.HTTP.Listen)
	if err != nil {
		return fmt.Errorf("http.listen %s: %w", p.cfg.HTTP.Listen, err)
	}
	return nil
}

// apiTokens turns config's tokens into the API's. Config has validated
// them; an error here is a config the validation let through.
func apiTokens(cfg []config.HTTPToken) ([]api.Token, error) {
	out := make([]api.Token, 0, len(cfg))
	for i, t := range cfg {
		tok, err := api.ParseToken(t.Name, t.SHA256, t.Role)
		if err != nil {
			return nil, fmt.Errorf("http.tokens[%d]: %w", i, err)
		}
		out = append(out, tok)
	}
	return out, nil
}

// handler serves /metrics, /healthz and /readyz, open to all, and the API
// under /api/, which authenticates every request itself.
func (p *Pipeline) handler(apiHandler http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(p.registry, promhttp.HandlerOpts{Registry: p.registry}))
	// /healthz is liveness only: a recon whose broker is down is alive and
	// must not be restarted for it.
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Write([]byte("ok\n"))
	})
	// /readyz lists every readiness check, one a line, and answers 503 when
	// any fails.
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		cs := p.Readiness()
		var b strings.Builder
		for _, c := range cs {
			b.WriteString(c.String())
			b.WriteByte('\n')
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		if !cs.OK() {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		w.Write([]byte(b.String()))
	})
	mux.Handle(api.Prefix, apiHandler)
	return mux
}

// URL is the base URL of the HTTP endpoints (https:// with http.tls), or ""
// without HTTP.
func (p *Pipeline) URL() string {
	if p.listener == nil {
		return ""
	}
	if p.httpTLS {
		return "https://" + p.Addr()
	}
	return "http://" + p.Addr()
}

// serveHTTP serves until ctx is done, then shuts the server down, waiting a
// little for requests in progress.
func (p *Pipeline) serveHTTP(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() {
		if p.httpTLS {
			errc <- p.http.ServeTLS(p.listener, "", "")
			return
		}
		errc <- p.http.Serve(p.listener)
	}()
	select {
	case err := <-errc:
		return fmt.Errorf("serving http on %s: %w", p.Addr(), err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := p.http.Shutdown(sctx); err != nil {
		p.log.Warn("http shutdown", "err", err)
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
