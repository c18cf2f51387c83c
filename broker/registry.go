package broker

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/twmb/franz-go/pkg/sr/srfake"
)

// registry is franz-go's in-memory schema registry (srfake) served on a
// listener of our choice, so that Avro producers and recon find it at a
// fixed address. It speaks plain HTTP and keeps nothing across restarts.
type registry struct {
	srv  *http.Server
	url  string
	done chan error // Serve's result
}

// startRegistry listens on addr (host:port, validated like Options.Listen)
// and serves srfake there until close.
func startRegistry(addr string) (*registry, error) {
	addr, err := listenAddr(addr)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("schema registry: %w", err)
	}
	r := &registry{
		srv:  &http.Server{Handler: srfake.NewRegistry().Handler(), ReadHeaderTimeout: 5 * time.Second},
		url:  "http://" + ln.Addr().String(),
		done: make(chan error, 1),
	}
	go func() { r.done <- r.srv.Serve(ln) }()
	return r, nil
}

// close stops serving, letting requests in progress finish for a moment.
func (r *registry) close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	err := r.srv.Shutdown(ctx)
	if serr := <-r.done; !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	if err != nil {
		return fmt.Errorf("stop schema registry: %w", err)
	}
	return nil
}
