package api

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/recon-dev/recon/state"
)

// The secrets of the test tokens; the handler only ever sees their hashes.
const (
	viewerSecret   = "viewer-secret-0001"
	approverSecret = "approver-secret-0002"
	adminSecret    = "admin-secret-0003"
)

func testToken(t *testing.T, name, secret, role string) Token {
	t.Helper()
	sum := sha256.Sum256([]byte(secret))
	tok, err := ParseToken(name, hex.EncodeToString(sum[:]), role)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func testTokens(t *testing.T) []Token {
	return []Token{
		testToken(t, "vera", viewerSecret, "viewer"),
		testToken(t, "alice", approverSecret, "approver"),
		testToken(t, "root", adminSecret, "admin"),
	}
}

// openStore opens a real Badger store in a temporary dir, closed at the end.
func openStore(t *testing.T) *state.Store {
	t.Helper()
	s, err := state.Open(t.TempDir(), state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	return s
}

// appendAudit commits n audit records, one per commit as checkpoints would.
func appendAudit(t *testing.T, s *state.Store, n int) {
	t.Helper()
	t0 := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	for i := 1; i <= n; i++ {
		b := s.NewBatch()
		b.AppendAudit(state.AuditRecord{Time: t0.Add(time.Duration(i) * time.Second), Actor: "recon", Action: "opened",
			Dataset: "orders", Target: "wh", Key: fmt.Sprint(i), RulesVersion: "1", ConfigHash: "c0ffee"})
		if err := s.Commit(b); err != nil {
			t.Fatal(err)
		}
	}
}

type testServer struct {
	t   *testing.T
	url string
}

func serve(t *testing.T, opts Options) *testServer {
	t.Helper()
	h, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &testServer{t: t, url: srv.URL}
}

// do sends a request with the bearer secret (none if empty) and returns the
// status, headers and body.
func (s *testServer) do(method, path, secret, body string) (int, http.Header, string) {
	s.t.Helper()
	req, err := http.NewRequest(method, s.url+path, strings.NewReader(body))
	if err != nil {
		s.t.Fatal(err)
	}
	if secret != "" {
		req.Header.Set("Authorization", "Bearer "+secret)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		s.t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, string(b)
}

// getJSON expects 200 and decodes the body into v.
func (s *testServer) getJSON(path, secret string, v any) {
	s.t.Helper()
	status, _, body := s.do("GET", path, secret, "")
	if status != http.StatusOK {
		s.t.Fatalf("GET %s: %d %s", path, status, body)
	}
	if err := json.Unmarshal([]byte(body), v); err != nil {
		s.t.Fatalf("GET %s: %v in %s", path, err, body)
	}
}

// wantError checks an error answer: its status and that its JSON body says
// the same status and a message containing msg.
func wantError(t *testing.T, what string, status int, body string, wantStatus int, msg string) {
	t.Helper()
	if status != wantStatus {
		t.Errorf("%s: status %d, want %d; body %s", what, status, wantStatus, body)
		return
	}
	var e ErrorBody
	if err := json.Unmarshal([]byte(body), &e); err != nil {
		t.Errorf("%s: error body is not JSON: %v: %q", what, err, body)
		return
	}
	if e.Status != wantStatus || !strings.Contains(e.Error, msg) {
		t.Errorf("%s: error body %+v, want status %d and a message with %q", what, e, wantStatus, msg)
	}
}

func TestParseToken(t *testing.T) {
	sum := sha256.Sum256([]byte("s3cret"))
	upper := strings.ToUpper(hex.EncodeToString(sum[:]))
	tok, err := ParseToken("alice", upper, "approver")
	if err != nil || tok.Hash != sum || tok.Role != Approver || tok.Name != "alice" {
		t.Errorf("ParseToken = %+v, %v", tok, err)
	}
	for _, bad := range []struct{ name, hash, role, want string }{
		{"", upper, "viewer", "without a name"},
		{"bob", upper[:62], "viewer", "want 64 hex digits"},
		{"bob", "zz" + upper[2:], "viewer", "want 64 hex digits"},
		{"bob", upper, "root", `unknown role "root"`},
	} {
		if _, err := ParseToken(bad.name, bad.hash, bad.role); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("ParseToken(%q, %q, %q) = %v; want %q", bad.name, bad.hash, bad.role, err, bad.want)
		}
	}
}

// Everything under /api needs a known token, unknown paths included; the
// challenge says Bearer; with no tokens configured nothing gets in.
func TestUnauthorized(t *testing.T) {
	s := serve(t, newFixture(t, "approve").options(testTokens(t)))
	for _, tc := range []struct{ what, method, path, header string }{
		{"no header", "GET", "/api/v1/audit", ""},
		{"unknown token", "GET", "/api/v1/audit", "Bearer not-a-token"},
		{"the hash itself as the token", "GET", "/api/v1/audit", "Bearer " + hex.EncodeToString(testTokens(t)[0].Hash[:])},
		{"basic auth", "GET", "/api/v1/audit", "Basic dmVyYTp2aWV3ZXItc2VjcmV0LTAwMDE="},
		{"empty bearer", "GET", "/api/v1/audit", "Bearer "},
		{"unknown path", "GET", "/api/v1/nothing-here", ""},
		{"a write", "POST", "/api/v1/repairs/r1/approve", "Bearer wrong"},
	} {
		req, _ := http.NewRequest(tc.method, s.url+tc.path, nil)
		if tc.header != "" {
			req.Header.Set("Authorization", tc.header)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		wantError(t, tc.what, resp.StatusCode, string(body), http.StatusUnauthorized, "bearer token")
		if ch := resp.Header.Get("WWW-Authenticate"); !strings.HasPrefix(ch, "Bearer ") {
			t.Errorf("%s: WWW-Authenticate %q", tc.what, ch)
		}
	}

	// No token configured: every secret is refused.
	closed := serve(t, newFixture(t, "approve").options(nil))
	for _, secret := range []string{"", viewerSecret, adminSecret} {
		status, _, body := closed.do("GET", "/api/v1/audit/verify", secret, "")
		wantError(t, "no tokens configured", status, body, http.StatusUnauthorized, "bearer token")
	}
}

// Known tokens read; the scheme's case does not matter; unknown paths and
// methods answer JSON errors after authentication.
func TestRoutingErrors(t *testing.T) {
	s := serve(t, newFixture(t, "approve").options(testTokens(t)))
	for _, secret := range []string{viewerSecret, approverSecret, adminSecret} {
		if status, _, body := s.do("GET", "/api/v1/audit", secret, ""); status != http.StatusOK {
			t.Errorf("GET audit with %s: %d %s", secret, status, body)
		}
	}
	req, _ := http.NewRequest("GET", s.url+"/api/v1/audit/verify", nil)
	req.Header.Set("Authorization", "bearer "+viewerSecret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" {
		t.Errorf("lower-case scheme: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}

	status, _, body := s.do("GET", "/api/v1/nothing-here", viewerSecret, "")
	wantError(t, "unknown path", status, body, http.StatusNotFound, "no such endpoint: /api/v1/nothing-here")
	status, hdr, body := s.do("DELETE", "/api/v1/audit", adminSecret, "")
	wantError(t, "DELETE audit", status, body, http.StatusMethodNotAllowed, "method DELETE not allowed")
	if allow := hdr.Get("Allow"); allow != "GET, HEAD" {
		t.Errorf("Allow %q", allow)
	}
	status, _, body = s.do("GET", "/api/v1/audit?sinse=3", viewerSecret, "")
	wantError(t, "misspelt parameter", status, body, http.StatusBadRequest, `unknown parameter "sinse": want since, limit`)
	status, _, body = s.do("GET", "/api/v1/audit?limit=1&limit=2", viewerSecret, "")
	wantError(t, "repeated parameter", status, body, http.StatusBadRequest, `parameter "limit" given 2 times`)
}

// GET audit pages through the log by seq; GET audit/verify checks it.
func TestAudit(t *testing.T) {
	f := newFixture(t, "approve")
	store := f.store
	s := serve(t, f.options(testTokens(t)))
	var page AuditPage
	s.getJSON("/api/v1/audit", viewerSecret, &page)
	if page.Items == nil || len(page.Items) != 0 || page.NextSince != 0 {
		t.Errorf("empty log: %+v", page)
	}
	var v AuditVerification
	s.getJSON("/api/v1/audit/verify", viewerSecret, &v)
	if !v.OK || v.Records != 0 || v.Head.Seq != 0 {
		t.Errorf("empty log verification: %+v", v)
	}

	appendAudit(t, store, 5)
	var seqs []uint64
	since := uint64(0)
	for range 10 {
		page = AuditPage{}
		s.getJSON(fmt.Sprintf("/api/v1/audit?since=%d&limit=2", since), viewerSecret, &page)
		if len(page.Items) == 0 {
			break
		}
		if len(page.Items) > 2 {
			t.Fatalf("limit 2 gave %d items", len(page.Items))
		}
		for _, r := range page.Items {
			seqs = append(seqs, r.Seq)
			if r.Actor != "recon" || r.Dataset != "orders" || r.Hash == (state.AuditHash{}) {
				t.Errorf("record %+v", r)
			}
		}
		since = page.NextSince
	}
	if fmt.Sprint(seqs) != "[1 2 3 4 5]" || since != 5 {
		t.Errorf("paged seqs %v, ending at since %d", seqs, since)
	}
	page = AuditPage{}
	s.getJSON("/api/v1/audit?since=18446744073709551615", viewerSecret, &page)
	if len(page.Items) != 0 || page.NextSince != 18446744073709551615 {
		t.Errorf("since max: %+v", page)
	}

	s.getJSON("/api/v1/audit/verify", viewerSecret, &v)
	want, _ := store.VerifyAudit()
	if !v.OK || v.Records != 5 || v.Head != want.Head || v.Break != nil {
		t.Errorf("verification %+v, want ok over 5 records, head %+v", v, want.Head)
	}

	for _, q := range []string{"since=-1", "since=abc", "limit=0", "limit=1001", "limit=x"} {
		status, _, body := s.do("GET", "/api/v1/audit?"+q, viewerSecret, "")
		wantError(t, q, status, body, http.StatusBadRequest, strings.SplitN(q, "=", 2)[0])
	}
	status, _, body := s.do("GET", "/api/v1/audit/verify?deep=1", viewerSecret, "")
	wantError(t, "verify with a parameter", status, body, http.StatusBadRequest, "takes none")
}
