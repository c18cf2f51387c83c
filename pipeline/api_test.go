package pipeline

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/recon-dev/recon/api"
	"github.com/recon-dev/recon/config"
)

// The bearer secrets of the API tests; config holds only their hashes.
const (
	viewerSecret   = "pipeline-viewer-secret"
	approverSecret = "pipeline-approver-secret"
	adminSecret    = "pipeline-admin-secret"
)

func tokenConfig(name, secret, role string) config.HTTPToken {
	sum := sha256.Sum256([]byte(secret))
	return config.HTTPToken{Name: name, SHA256: hex.EncodeToString(sum[:]), Role: role}
}

// withTokens gives the harness's recon a viewer "vera", an approver "alice"
// and an admin "root".
func (h *harness) withTokens() {
	h.cfg.HTTP.Tokens = []config.HTTPToken{
		tokenConfig("vera", viewerSecret, config.RoleViewer),
		tokenConfig("alice", approverSecret, config.RoleApprover),
		tokenConfig("root", adminSecret, config.RoleAdmin),
	}
}

// apiClient calls a running recon's HTTP endpoints.
type apiClient struct {
	t      *testing.T
	base   string
	client *http.Client
}

func newAPIClient(t *testing.T, p *Pipeline) *apiClient {
	return &apiClient{t: t, base: p.URL(), client: &http.Client{Timeout: 10 * time.Second}}
}

// do sends method path with the bearer secret (none if "") and a JSON body
// (none if nil), and returns the status and the body.
func (c *apiClient) do(method, path, secret string, body any) (int, []byte) {
	c.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			c.t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, c.base+path, rd)
	if err != nil {
		c.t.Fatal(err)
	}
	if secret != "" {
		req.Header.Set("Authorization", "Bearer "+secret)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.client.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatal(err)
	}
	return resp.StatusCode, out
}

// ok sends a request that must answer 200 and decodes its body into v.
func (c *apiClient) ok(method, path, secret string, body, v any) {
	c.t.Helper()
	status, out := c.do(method, path, secret, body)
	if status != http.StatusOK {
		c.t.Fatalf("%s %s: %d %s", method, path, status, out)
	}
	if v != nil {
		if err := json.Unmarshal(out, v); err != nil {
			c.t.Fatalf("%s %s: %v in %s", method, path, err, out)
		}
	}
}

// fails sends a request that must answer an error with status and a JSON
// body saying so, with msg in its message.
func (c *apiClient) fails(method, path, secret string, body any, status int, msg string) {
	c.t.Helper()
	got, out := c.do(method, path, secret, body)
	var e api.ErrorBody
	if err := json.Unmarshal(out, &e); err != nil || got != status || e.Status != status || !strings.Contains(e.Error, msg) {
		c.t.Errorf("%s %s: %d %s; want %d with %q", method, path, got, out, status, msg)
	}
}

// The API is served on http.listen next to the open endpoints: those stay
// open, the API wants a known token, and reads work for every role.
func TestAPIServedWithTokens(t *testing.T) {
	h := newHarness(t, time.Second, "approve")
	h.withTokens()
	p, _ := h.start()
	c := newAPIClient(t, p)
	for _, path := range []string{"/metrics", "/healthz", "/readyz"} {
		if status, out := c.do("GET", path, "", nil); status != http.StatusOK {
			t.Errorf("GET %s without a token: %d %s", path, status, out)
		}
	}
	c.fails("GET", "/api/v1/audit", "", nil, http.StatusUnauthorized, "missing bearer token")
	c.fails("GET", "/api/v1/audit", "guess", nil, http.StatusUnauthorized, "unknown bearer token")
	c.fails("GET", "/api/", "", nil, http.StatusUnauthorized, "bearer token")
	for _, secret := range []string{viewerSecret, approverSecret, adminSecret} {
		var page api.AuditPage
		c.ok("GET", "/api/v1/audit", secret, nil, &page)
		// recon's first start records the dataset's config.
		if len(page.Items) == 0 || page.Items[0].Action != "config_changed" {
			t.Errorf("audit page %+v", page)
		}
		var v api.AuditVerification
		c.ok("GET", "/api/v1/audit/verify", secret, nil, &v)
		if !v.OK || v.Records == 0 {
			t.Errorf("audit verification %+v", v)
		}
	}
}

// Without tokens the API refuses everything, the rest still answers.
func TestAPIClosedWithoutTokens(t *testing.T) {
	h := newHarness(t, time.Second, "approve")
	p, _ := h.start()
	c := newAPIClient(t, p)
	c.fails("GET", "/api/v1/audit/verify", "anything", nil, http.StatusUnauthorized, "unknown bearer token")
	if status, _ := c.do("GET", "/healthz", "", nil); status != http.StatusOK {
		t.Errorf("healthz: %d", status)
	}
}

// With http.tls the listener speaks TLS only; a certificate that does not
// load stops recon at start.
func TestAPIOverTLS(t *testing.T) {
	pki := newTestPKI(t)
	h := newHarness(t, time.Second, "approve")
	h.withTokens()
	h.cfg.HTTP.TLS = config.HTTPTLS{CertFile: pki.ServerCert, KeyFile: pki.ServerKey}
	p, _ := h.start()
	if !strings.HasPrefix(p.URL(), "https://") {
		t.Fatalf("URL %q", p.URL())
	}
	pem, err := os.ReadFile(pki.CA)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	c := newAPIClient(t, p)
	c.client.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
	var v api.AuditVerification
	c.ok("GET", "/api/v1/audit/verify", viewerSecret, nil, &v)
	if !v.OK {
		t.Errorf("verification %+v", v)
	}
	plain := &apiClient{t: t, base: "http://" + p.Addr(), client: &http.Client{Timeout: 5 * time.Second}}
	if status, _ := plain.do("GET", "/healthz", "", nil); status != http.StatusBadRequest {
		t.Errorf("plain HTTP to the TLS listener: %d, want 400", status)
	}

	h2 := newHarness(t, time.Second, "approve")
	h2.cfg.HTTP.TLS = config.HTTPTLS{CertFile: pki.ServerCert, KeyFile: pki.ClientKey}
	if _, err := New(t.Context(), h2.cfg, Options{}); err == nil || !strings.Contains(err.Error(), "http.tls: loading") {
		t.Errorf("New with a mismatched key: %v", err)
	}
}
