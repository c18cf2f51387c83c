package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/recon-dev/recon/state"
)

// auditStateDir writes a closed state dir holding n audit records, over
// three commits as recon's checkpoints would.
func auditStateDir(t *testing.T, n int) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "state")
	s, err := state.Open(dir, state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	for i := 1; i <= n; i++ {
		b := s.NewBatch()
		b.AppendAudit(state.AuditRecord{Time: t0.Add(time.Duration(i) * time.Second), Actor: "recon", Action: "opened",
			Dataset: "orders", Target: "wh", Key: fmt.Sprint(i), DivergenceID: fmt.Sprintf("div-%d", i),
			RulesVersion: "1", ConfigHash: "c0ffee", Detail: "missing: the target never had it"})
		if err := s.Commit(b); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return dir
}

// auditKey is where the layout (state/layout.go) keeps audit record seq: an
// outsider with the state dir needs no more to tamper with it.
func auditKey(seq uint64) []byte { return binary.BigEndian.AppendUint64([]byte{'a'}, seq) }

// tamperDir copies the state dir and edits the copy's Badger directly.
func tamperDir(t *testing.T, src string, f func(txn *badger.Txn) error) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "state")
	if err := os.CopyFS(dst, os.DirFS(src)); err != nil {
		t.Fatal(err)
	}
	db, err := badger.Open(badger.DefaultOptions(dst).WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(f); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	return dst
}

func value(txn *badger.Txn, seq uint64) []byte {
	item, err := txn.Get(auditKey(seq))
	if err != nil {
		panic(err)
	}
	v, err := item.ValueCopy(nil)
	if err != nil {
		panic(err)
	}
	return v
}

func verifyCmd(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(context.Background(), append([]string{"audit", "verify"}, args...), &out, &errb)
	return code, out.String(), errb.String()
}

// recon audit verify passes an untouched log with its count and head hash,
// and for a log whose records were altered, deleted or reordered in the
// closed state dir, names the first broken link and exits non-zero.
func TestAuditVerifyCommand(t *testing.T) {
	const n = 5
	clean := auditStateDir(t, n)

	code, out, errOut := verifyCmd(t, "--state-dir", clean)
	if code != 0 || !strings.HasPrefix(out, "OK: 5 audit records, head seq 5 hash ") || len(strings.TrimSpace(out)) != len("OK: 5 audit records, head seq 5 hash ")+64 {
		t.Fatalf("untouched log: exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}

	for _, c := range []struct {
		name, problem string
		tamper        func(txn *badger.Txn) error
		want          string
	}{
		{"altered", "altered", func(txn *badger.Txn) error {
			v := value(txn, 3)
			i := bytes.Index(v, []byte("missing"))
			v[i] = 'M' // one character of the detail
			return txn.Set(auditKey(3), v)
		}, "BROKEN at seq 3: altered: its fields hash to "},
		{"deleted", "removed", func(txn *badger.Txn) error {
			return txn.Delete(auditKey(2))
		}, "BROKEN at seq 2: removed: seq 2 is missing: the next stored record is seq 3"},
		{"newest deleted", "removed", func(txn *badger.Txn) error {
			return txn.Delete(auditKey(n))
		}, "BROKEN at seq 5: removed: seq 5 is missing: the chain head is seq 5"},
		{"reordered", "reordered", func(txn *badger.Txn) error {
			three, four := value(txn, 3), value(txn, 4)
			if err := txn.Set(auditKey(3), four); err != nil {
				return err
			}
			return txn.Set(auditKey(4), three)
		}, "BROKEN at seq 3: reordered: the record stored as seq 3 is seq 4"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := tamperDir(t, clean, c.tamper)
			code, out, errOut := verifyCmd(t, "--state-dir", dir)
			if code == 0 || !strings.HasPrefix(out, c.want) {
				t.Fatalf("exit %d\nstdout: %s\nstderr: %s\nwant stdout to start with %q", code, out, errOut, c.want)
			}
			code, out, _ = verifyCmd(t, "--state-dir", dir, "-o", "json")
			var v struct {
				OK    bool `json:"ok"`
				Break struct {
					Seq     uint64 `json:"seq"`
					Problem string `json:"problem"`
				} `json:"break"`
			}
			if err := json.Unmarshal([]byte(out), &v); err != nil || code == 0 || v.OK || v.Break.Problem != c.problem {
				t.Fatalf("-o json: exit %d, %s, %v", code, out, err)
			}
		})
	}
}

// The command refuses what it cannot check, with one line and exit 1: no
// state dir, a state dir recon is running on, bad flags.
func TestAuditVerifyRefuses(t *testing.T) {
	if code, _, errOut := verifyCmd(t); code != 1 || !strings.Contains(errOut, "--state-dir is required") {
		t.Errorf("no --state-dir: exit %d, %s", code, errOut)
	}
	if code, _, errOut := verifyCmd(t, "--state-dir", t.TempDir()); code != 1 || !strings.Contains(errOut, "not a recon state dir") {
		t.Errorf("empty dir: exit %d, %s", code, errOut)
	}
	dir := auditStateDir(t, 1)
	s, err := state.Open(dir, state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if code, _, errOut := verifyCmd(t, "--state-dir", dir); code != 1 || !strings.Contains(errOut, "Another process is using") || strings.Count(errOut, "\n") != 1 {
		t.Errorf("open state dir: exit %d, %q", code, errOut)
	}
	if code, _, _ := verifyCmd(t, "--state-dir", dir, "-o", "yaml"); code != 1 {
		t.Errorf("-o yaml: exit %d", code)
	}
}
