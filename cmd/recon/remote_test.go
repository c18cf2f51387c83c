package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/recon-dev/recon/api"
	"github.com/recon-dev/recon/compare"
	"github.com/recon-dev/recon/reconcile"
	"github.com/recon-dev/recon/repair"
	"github.com/recon-dev/recon/state"
)

// cli runs one recon command and returns its exit code and outputs.
func cli(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

// caughtUp says every topic is read far enough.
type caughtUp struct{}

func (caughtUp) CaughtUp(string, time.Time, time.Time, time.Duration) bool { return true }

// apiServer serves the API of an engine over the store with one token per role: viewer
// "vera" (secret "vera-secret"), approver "alice" and admin "root".
func apiServer(t *testing.T, store *state.Store) string {
	t.Helper()
	var tokens []api.Token
	for _, tk := range [][3]string{{"vera", "vera-secret", "viewer"}, {"alice", "alice-secret", "approver"}, {"root", "root-secret", "admin"}} {
		sum := sha256.Sum256([]byte(tk[1]))
		tok, err := api.ParseToken(tk[0], hex.EncodeToString(sum[:]), tk[2])
		if err != nil {
			t.Fatal(err)
		}
		tokens = append(tokens, tok)
	}
	eng, err := reconcile.New(store, reconcile.Options{
		Datasets: []reconcile.Dataset{{Name: "orders", Window: time.Second,
			Source: reconcile.System{Name: "pg", Topic: "src"}, Targets: []reconcile.System{{Name: "wh", Topic: "tgt"}}}},
		Outputs:  reconcile.Outputs{Divergences: "div", Repairs: "rep", DLQ: "dlq"},
		Hasher:   compare.NewHasher([]byte("0123456789abcdef")),
		Planner:  repair.NewPlanner(map[string]repair.Policy{"orders": {Mode: "approve"}}),
		Progress: caughtUp{},
	})
	if err != nil {
		t.Fatal(err)
	}
	h, err := api.New(api.Options{Tokens: tokens, Engine: eng, Store: store})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}

// recon audit verify --server and recon audit list read a running recon's
// log through the API, as tables or JSON; the token comes from the
// environment or --token.
func TestAuditOverAPI(t *testing.T) {
	dir := auditStateDir(t, 3)
	store, err := state.Open(dir, state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	url := apiServer(t, store)
	t.Setenv("RECON_TOKEN", "vera-secret")
	t.Setenv("RECON_SERVER", "")

	code, out, errOut := cli(t, "audit", "verify", "--server", url)
	if code != 0 || !strings.HasPrefix(out, "OK: 3 audit records, head seq 3 hash ") {
		t.Errorf("audit verify --server: exit %d\n%s%s", code, out, errOut)
	}
	code, out, _ = cli(t, "audit", "verify", "--server", url, "-o", "json")
	var v api.AuditVerification
	if err := json.Unmarshal([]byte(out), &v); err != nil || code != 0 || !v.OK || v.Records != 3 {
		t.Errorf("audit verify -o json: exit %d, %v: %s", code, err, out)
	}
	// RECON_SERVER alone selects the API.
	t.Setenv("RECON_SERVER", url)
	if code, out, errOut := cli(t, "audit", "verify"); code != 0 || !strings.HasPrefix(out, "OK: 3") {
		t.Errorf("audit verify with RECON_SERVER: exit %d\n%s%s", code, out, errOut)
	}

	code, out, errOut = cli(t, "audit", "list", "--since", "1")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(lines) != 3 || !strings.HasPrefix(lines[0], "SEQ ") ||
		!strings.HasPrefix(lines[1], "2 ") || !strings.Contains(lines[1], "opened") || !strings.HasPrefix(lines[2], "3 ") {
		t.Errorf("audit list --since 1: exit %d\n%s%s", code, out, errOut)
	}
	code, out, _ = cli(t, "audit", "list", "-o", "json", "--limit", "2")
	var page api.AuditPage
	if err := json.Unmarshal([]byte(out), &page); err != nil || code != 0 || len(page.Items) != 2 || page.NextSince != 2 {
		t.Errorf("audit list -o json --limit 2: exit %d, %v: %s", code, err, out)
	}

	// Errors are one line with the HTTP status and the API's message.
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"audit", "list", "--token", "wrong"}, "recon audit list: 401 Unauthorized: unknown bearer token\n"},
		{[]string{"audit", "list", "--limit", "5000"}, "recon audit list: 400 Bad Request: limit \"5000\": want an integer from 1 to 1000\n"},
		{[]string{"audit", "verify", "--server", "http://" + freeAddr(t)}, "connection refused"},
		{[]string{"audit", "verify", "--server", "ftp://x"}, "want http://host:port"},
		{[]string{"audit", "verify", "--server", url, "--state-dir", dir}, "give one of them"},
	} {
		code, _, errOut := cli(t, tc.args...)
		if code != 1 || !strings.Contains(errOut, tc.want) || strings.Count(errOut, "\n") != 1 {
			t.Errorf("%v: exit %d, stderr %q; want one line with %q", tc.args, code, errOut, tc.want)
		}
	}
	t.Setenv("RECON_TOKEN", "")
	if code, _, errOut := cli(t, "audit", "list"); code != 1 || !strings.Contains(errOut, "no API token: set RECON_TOKEN") {
		t.Errorf("no token: exit %d, %q", code, errOut)
	}
}

// Flags may come before, between or after the positional arguments; after
// "--" everything is positional.
func TestParseArgs(t *testing.T) {
	for _, tc := range []struct {
		args       []string
		want, errs string
		reason     string
	}{
		{[]string{"orders", "1"}, "[orders 1]", "", ""},
		{[]string{"--reason", "x", "orders", "1"}, "[orders 1]", "", "x"},
		{[]string{"orders", "--reason", "x y", "1"}, "[orders 1]", "", "x y"},
		{[]string{"orders", "1", "--reason=z"}, "[orders 1]", "", "z"},
		{[]string{"orders", "--", "-5"}, "[orders -5]", "", ""},
		{[]string{"--", "orders", "--reason"}, "[orders --reason]", "", ""},
		{[]string{"orders"}, "", "want DATASET KEY, got 1 argument(s)", ""},
		{[]string{"orders", "1", "2"}, "", "want DATASET KEY, got 3 argument(s)", ""},
		{[]string{"orders", "--nope", "1"}, "", "flag provided but not defined: -nope", ""},
	} {
		fs := flag.NewFlagSet("test", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		reason := fs.String("reason", "", "")
		pos, err := parseArgs(fs, tc.args, "DATASET", "KEY")
		switch {
		case tc.errs != "":
			if err == nil || !strings.Contains(err.Error(), tc.errs) {
				t.Errorf("%q: %v, want %q", tc.args, err, tc.errs)
			}
		case err != nil || fmt.Sprint(pos) != tc.want || *reason != tc.reason:
			t.Errorf("%q: %q %v, reason %q; want %s, reason %q", tc.args, pos, err, *reason, tc.want, tc.reason)
		}
	}
	if _, err := parseArgs(flag.NewFlagSet("test", flag.ContinueOnError), []string{"x"}); err == nil || err.Error() != `unexpected argument "x"` {
		t.Errorf("no positional arguments wanted: %v", err)
	}
}
