package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/recon-dev/recon/state"
)

// cmdAuditVerify checks the audit chain of a closed state dir, read-only. A
// broken chain is a result: it is printed on stdout, then recon exits 1.
func cmdAuditVerify(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("recon audit verify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("state-dir", "", "state dir (state.dir of the config) of a stopped recon; required")
	output := fs.String("o", "text", "output: text or json")
	if err := fs.Parse(args); err != nil {
		return err
	}
	switch {
	case fs.NArg() > 0:
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	case *dir == "":
		return errors.New("--state-dir is required")
	case *output != "text" && *output != "json":
		return fmt.Errorf("-o %q: want text or json", *output)
	}
	// Read-only: the check must not change what it checks. Badger refuses
	// while a recon holds the dir, and says so.
	store, err := state.Open(*dir, state.Options{ReadOnly: true})
	if err != nil {
		return err
	}
	v, err := store.VerifyAudit()
	if cerr := store.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("closing state dir %s: %w", *dir, cerr)
	}
	if err != nil {
		return err
	}
	if *output == "json" {
		out, err := json.Marshal(struct {
			OK bool `json:"ok"`
			state.AuditVerification
		}{v.OK(), v})
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s\n", out)
	} else {
		printVerification(stdout, v)
	}
	if !v.OK() {
		return errExitSilently
	}
	return nil
}

func printVerification(w io.Writer, v state.AuditVerification) {
	if v.OK() {
		fmt.Fprintf(w, "OK: %d audit records, head seq %d hash %s\n", v.Records, v.Head.Seq, v.Head.Hash)
		return
	}
	fmt.Fprintf(w, "BROKEN at seq %d: %s: %s\n", v.Break.Seq, v.Break.Problem, v.Break.Detail)
	fmt.Fprintf(w, "%d records verify before it; the chain head is seq %d hash %s\n", v.Records, v.Head.Seq, v.Head.Hash)
}
