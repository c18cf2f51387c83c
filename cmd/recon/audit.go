package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/recon-dev/recon/api"
	"github.com/recon-dev/recon/state"
)

// cmdAuditVerify checks the audit chain: of a running recon through its API
// with --server (or RECON_SERVER), else of a closed state dir, read-only. A
// broken chain is a result: it is printed on stdout, then recon exits 1.
func cmdAuditVerify(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("recon audit verify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("state-dir", "", "state dir (state.dir of the config) of a stopped recon, checked offline")
	output := fs.String("o", "text", "output: text or json")
	remote := addRemoteFlags(fs)
	if _, err := parseArgs(fs, args); err != nil {
		return err
	}
	dirSet := false
	fs.Visit(func(f *flag.Flag) { dirSet = dirSet || f.Name == "state-dir" })
	switch {
	case *output != "text" && *output != "table" && *output != "json":
		return fmt.Errorf("-o %q: want text or json", *output)
	case dirSet && *dir == "":
		return errors.New("--state-dir is empty")
	case dirSet && remote.server != "":
		return errors.New("--state-dir checks a stopped recon, --server a running one: give one of them")
	case !dirSet && !remote.serverSet():
		return errors.New("--state-dir is required to check a stopped recon, or --server (or RECON_SERVER) a running one")
	}
	var v state.AuditVerification
	var err error
	if dirSet {
		v, err = verifyStateDir(*dir)
	} else {
		v, err = verifyRemote(ctx, remote)
	}
	if err != nil {
		return err
	}
	if *output == "json" {
		if err := printJSON(stdout, api.AuditVerification{OK: v.OK(), AuditVerification: v}); err != nil {
			return err
		}
	} else {
		printVerification(stdout, v)
	}
	if !v.OK() {
		return errExitSilently
	}
	return nil
}

// verifyStateDir verifies a closed state dir, read-only: the check must not
// change what it checks. Badger refuses while a recon holds the dir, and
// says so.
func verifyStateDir(dir string) (state.AuditVerification, error) {
	store, err := state.Open(dir, state.Options{ReadOnly: true})
	if err != nil {
		return state.AuditVerification{}, err
	}
	v, err := store.VerifyAudit()
	if cerr := store.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("closing state dir %s: %w", dir, cerr)
	}
	return v, err
}

func verifyRemote(ctx context.Context, remote *remoteFlags) (state.AuditVerification, error) {
	c, err := remote.client()
	if err != nil {
		return state.AuditVerification{}, err
	}
	v, err := c.VerifyAudit(ctx)
	if err != nil {
		return state.AuditVerification{}, remoteError(err)
	}
	return v.AuditVerification, nil
}

// cmdAuditList prints a running recon's audit records, oldest first.
func cmdAuditList(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("recon audit list", flag.ContinueOnError)
	fs.SetOutput(stderr)
	since := fs.Uint64("since", 0, "only records with a seq above this one")
	limit := fs.Int("limit", 0, "at most this many records (default: the server's, 100; at most 1000)")
	output := outputFlag(fs)
	remote := addRemoteFlags(fs)
	if _, err := parseArgs(fs, args); err != nil {
		return err
	}
	if err := checkOutput(*output); err != nil {
		return err
	}
	c, err := remote.client()
	if err != nil {
		return err
	}
	page, err := c.AuditRecords(ctx, *since, *limit)
	if err != nil {
		return remoteError(err)
	}
	if *output == "json" {
		return printJSON(stdout, page)
	}
	t := newTable(stdout, "SEQ", "TIME", "ACTOR", "ACTION", "DATASET", "TARGET", "KEY", "REPAIR", "DETAIL")
	for _, r := range page.Items {
		t.row(fmt.Sprint(r.Seq), fmtTime(r.Time), r.Actor, r.Action, r.Dataset, r.Target, r.Key, r.RepairID, r.Detail)
	}
	return t.flush()
}

func printVerification(w io.Writer, v state.AuditVerification) {
	if v.OK() {
		fmt.Fprintf(w, "OK: %d audit records, head seq %d hash %s\n", v.Records, v.Head.Seq, v.Head.Hash)
		return
	}
	fmt.Fprintf(w, "BROKEN at seq %d: %s: %s\n", v.Break.Seq, v.Break.Problem, v.Break.Detail)
	fmt.Fprintf(w, "%d records verify before it; the chain head is seq %d hash %s\n", v.Records, v.Head.Seq, v.Head.Hash)
}
