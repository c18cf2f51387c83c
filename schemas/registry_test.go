package schemas

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/sr"
	"github.com/twmb/franz-go/pkg/sr/srfake"
)

const registryTestSchema = `{"type":"record","name":"Key","namespace":"pg.public.orders","fields":[{"name":"id","type":"long"}]}`

// fakeRegistry is srfake with one Avro schema at id 7, counting the requests
// for schemas by id.
func fakeRegistry(t *testing.T) (*srfake.Registry, *atomic.Int64) {
	t.Helper()
	fake := srfake.New()
	t.Cleanup(fake.Close)
	fake.SeedSchema("pg.public.orders-key", 1, 7, sr.Schema{Schema: registryTestSchema})
	var byID atomic.Int64
	fake.Intercept(func(_ http.ResponseWriter, r *http.Request) bool {
		if strings.HasPrefix(r.URL.Path, "/schemas/ids/") {
			byID.Add(1)
		}
		return false
	})
	return fake, &byID
}

func newRegistry(t *testing.T, url string, opts ...RegistryOpt) *Registry {
	t.Helper()
	r, err := NewRegistry(url, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestRegistrySchemaCached(t *testing.T) {
	fake, byID := fakeRegistry(t)
	r := newRegistry(t, fake.URL())
	for range 3 {
		s, err := r.Schema(t.Context(), 7)
		if err != nil {
			t.Fatal(err)
		}
		if s.ID != 7 || s.Text != registryTestSchema || s.Codec == nil {
			t.Fatalf("Schema(7) = %+v", s)
		}
		native, _, err := s.Codec.NativeFromBinary([]byte{0x54}) // zigzag 42
		if err != nil || native.(map[string]any)["id"] != int64(42) {
			t.Fatalf("codec decodes %v, %v", native, err)
		}
	}
	// An id's schema never changes: one request serves every later call.
	if n := byID.Load(); n != 1 {
		t.Errorf("%d requests for id 7, want 1", n)
	}
}

// Concurrent callers of one id share one request.
func TestRegistrySingleFlight(t *testing.T) {
	fake, byID := fakeRegistry(t)
	release := make(chan struct{})
	fake.Intercept(func(_ http.ResponseWriter, r *http.Request) bool {
		<-release // hold the first request until every caller is in
		return false
	})
	r := newRegistry(t, fake.URL())
	const callers = 8
	var wg, started sync.WaitGroup
	started.Add(callers)
	errs := make(chan error, callers)
	for range callers {
		wg.Go(func() {
			started.Done()
			_, err := r.Schema(t.Context(), 7)
			errs <- err
		})
	}
	started.Wait()
	// Without single flight each caller would send its own request while
	// the first is held; give them a moment to show up.
	for deadline := time.Now().Add(200 * time.Millisecond); time.Now().Before(deadline) && byID.Load() <= 1; {
		time.Sleep(5 * time.Millisecond)
	}
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := byID.Load(); n != 1 {
		t.Errorf("%d requests for %d concurrent callers, want 1", n, callers)
	}
}

func TestRegistryErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		// reply answers GET /schemas/ids/{id}.
		reply func(w http.ResponseWriter, r *http.Request)
		want  error
		// cached: the answer is kept, so a second call sends no request.
		cached bool
	}{{
		// The registry's own "no such schema": definitive.
		name: "unknown id 40403",
		reply: func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(http.StatusNotFound)
			w.Write([]byte(`{"error_code":40403,"message":"Schema 9 not found"}`))
		},
		want: ErrUnknownSchemaID,
	}, {
		// A 404 without the registry's error code is a wrong URL or a proxy:
		// it says nothing about the id.
		name:  "bare 404",
		reply: func(w http.ResponseWriter, _ *http.Request) { http.NotFound(w, nil) },
		want:  ErrRegistryUnavailable,
	}, {
		name: "5xx",
		reply: func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(http.StatusServiceUnavailable)
			w.Write([]byte(`{"error_code":50003,"message":"Error while forwarding the request to the leader"}`))
		},
		want: ErrRegistryUnavailable,
	}, {
		// Bad credentials are fixed by a person; until then nothing is lost
		// by waiting.
		name:  "401",
		reply: func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusUnauthorized) },
		want:  ErrRegistryUnavailable,
	}, {
		// A reply that is not the registry's JSON.
		name:  "not json",
		reply: func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte(`<html>login</html>`)) },
		want:  ErrRegistryUnavailable,
	}, {
		// Slower than the request timeout.
		name:  "timeout",
		reply: func(_ http.ResponseWriter, r *http.Request) { <-r.Context().Done() },
		want:  ErrRegistryUnavailable,
	}, {
		name:   "protobuf",
		reply:  schemaReply(`{"schema":"syntax = \"proto3\";","schemaType":"PROTOBUF"}`),
		want:   ErrUnusableSchema,
		cached: true,
	}, {
		name:   "references",
		reply:  schemaReply(`{"schema":"{\"type\":\"record\",\"name\":\"A\",\"fields\":[{\"name\":\"b\",\"type\":\"B\"}]}","references":[{"name":"B","subject":"b","version":1}]}`),
		want:   ErrUnusableSchema,
		cached: true,
	}, {
		name:   "bad avro",
		reply:  schemaReply(`{"schema":"{\"type\":\"record\",\"name\":\"A\"}"}`),
		want:   ErrUnusableSchema,
		cached: true,
	}, {
		// goavro panics on a decimal without a scale once another decimal
		// of that name is known; the panic must come back as an error.
		name: "goavro panic",
		reply: schemaReply(`{"schema":"{\"type\":\"record\",\"name\":\"A\",\"fields\":[` +
			`{\"name\":\"a\",\"type\":{\"type\":\"bytes\",\"logicalType\":\"decimal\",\"precision\":4,\"scale\":2}},` +
			`{\"name\":\"b\",\"type\":{\"type\":\"bytes\",\"logicalType\":\"decimal\",\"precision\":4}}]}"}`),
		want:   ErrUnusableSchema,
		cached: true,
	}} {
		t.Run(tc.name, func(t *testing.T) {
			var requests atomic.Int64
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				requests.Add(1)
				tc.reply(w, r)
			}))
			t.Cleanup(srv.Close)
			r := newRegistry(t, srv.URL, RegistryTimeout(200*time.Millisecond))
			for range 2 {
				s, err := r.Schema(t.Context(), 9)
				if !errors.Is(err, tc.want) || s != nil {
					t.Fatalf("Schema(9) = %v, %v; want %v", s, err, tc.want)
				}
				if !strings.Contains(err.Error(), "schema id 9") {
					t.Errorf("error %q does not name the id", err)
				}
			}
			want := int64(2)
			if tc.cached {
				want = 1
			}
			if n := requests.Load(); n != want {
				t.Errorf("%d requests for two calls, want %d", n, want)
			}
		})
	}
}

func schemaReply(body string) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte(body)) }
}

func TestRegistryUnreachable(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close() // nothing listens there any more
	r := newRegistry(t, url)
	if _, err := r.Schema(t.Context(), 1); !errors.Is(err, ErrRegistryUnavailable) {
		t.Errorf("Schema on a closed port: %v, want ErrRegistryUnavailable", err)
	}
	if err := r.Ping(t.Context()); !errors.Is(err, ErrRegistryUnavailable) {
		t.Errorf("Ping on a closed port: %v, want ErrRegistryUnavailable", err)
	}
}

// A caller whose ctx ends while another caller's request runs gets a
// retryable error, and the request goes on for the others.
func TestRegistryWaiterCancelled(t *testing.T) {
	fake, _ := fakeRegistry(t)
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	fake.Intercept(func(_ http.ResponseWriter, _ *http.Request) bool {
		entered <- struct{}{}
		<-release
		return false
	})
	r := newRegistry(t, fake.URL())
	done := make(chan error, 1)
	go func() {
		_, err := r.Schema(t.Context(), 7)
		done <- err
	}()
	<-entered
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := r.Schema(ctx, 7); !errors.Is(err, ErrRegistryUnavailable) || !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled waiter: %v, want ErrRegistryUnavailable and context.Canceled", err)
	}
	close(release)
	if err := <-done; err != nil {
		t.Errorf("the fetching caller: %v", err)
	}
}

func TestRegistryCredentials(t *testing.T) {
	var gotUser, gotPass string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotUser, gotPass, _ = r.BasicAuth()
		w.WriteHeader(http.StatusInternalServerError)
	}))
	t.Cleanup(srv.Close)
	r := newRegistry(t, strings.Replace(srv.URL, "http://", "http://svc:s3cret@", 1))
	_, err := r.Schema(t.Context(), 1)
	if gotUser != "svc" || gotPass != "s3cret" {
		t.Errorf("basic auth %q:%q, want svc:s3cret", gotUser, gotPass)
	}
	if err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("error %v: want an error without the password", err)
	}
	if strings.Contains(r.URL(), "s3cret") {
		t.Errorf("URL() = %q shows the password", r.URL())
	}
}

func TestRegistryPing(t *testing.T) {
	fake, _ := fakeRegistry(t)
	if err := newRegistry(t, fake.URL()).Ping(t.Context()); err != nil {
		t.Errorf("Ping(srfake): %v", err)
	}
	for _, status := range []int{http.StatusUnauthorized, http.StatusBadGateway} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(status) }))
		err := newRegistry(t, srv.URL).Ping(t.Context())
		srv.Close()
		if !errors.Is(err, ErrRegistryUnavailable) {
			t.Errorf("Ping answered %d: %v, want ErrRegistryUnavailable", status, err)
		}
	}
}

func TestNewRegistryRejects(t *testing.T) {
	for _, url := range []string{"", "registry:8081", "ftp://registry", "http://"} {
		if _, err := NewRegistry(url); err == nil {
			t.Errorf("NewRegistry(%q) accepted", url)
		}
	}
	if _, err := NewRegistry("http://user:pw@registry:8081/", RegistryTimeout(0)); err == nil || strings.Contains(err.Error(), "pw") {
		t.Errorf("zero timeout: %v", err)
	}
}
