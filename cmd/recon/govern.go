package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"

	"github.com/recon-dev/recon/api"
	"github.com/recon-dev/recon/compare"
	"github.com/recon-dev/recon/reconcile"
)

// The commands over the API: what people review and decide. Each prints a
// table by default and the API's JSON with -o json, and fails with one line
// naming the HTTP status and the API's message.

// remoteCmd is what every remote command shares: its flags, parsed, and a
// client.
type remoteCmd struct {
	fs     *flag.FlagSet
	remote *remoteFlags
	output *string
}

func newRemoteCmd(name string, stderr io.Writer) *remoteCmd {
	fs := flag.NewFlagSet("recon "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return &remoteCmd{fs: fs, output: outputFlag(fs), remote: addRemoteFlags(fs)}
}

// parse parses args for the positional arguments named, and builds the
// client.
func (c *remoteCmd) parse(args []string, positional ...string) ([]string, *api.Client, error) {
	pos, err := parseArgs(c.fs, args, positional...)
	if err != nil {
		return nil, nil, err
	}
	if err := checkOutput(*c.output); err != nil {
		return nil, nil, err
	}
	cl, err := c.remote.client()
	return pos, cl, err
}

func (c *remoteCmd) json() bool { return *c.output == "json" }

// nextPage tells on stderr how to read on, so stdout stays a table.
func nextPage(stderr io.Writer, cursor string) {
	if cursor != "" {
		fmt.Fprintf(stderr, "more: repeat with --cursor %s\n", cursor)
	}
}

func cmdDivergencesList(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c := newRemoteCmd("divergences list", stderr)
	var f reconcile.DivergenceFilter
	c.fs.StringVar(&f.Dataset, "dataset", "", "only this dataset")
	c.fs.StringVar(&f.Target, "target", "", "only this target")
	c.fs.StringVar(&f.Kind, "kind", "", "only this kind: missing, orphan, lagging or conflict")
	c.fs.StringVar(&f.State, "state", "", "only this state: open or resolved")
	c.fs.IntVar(&f.Limit, "limit", 0, "at most this many (default: the server's, 100; at most 1000)")
	c.fs.StringVar(&f.Cursor, "cursor", "", "the next page, as a previous listing said")
	_, cl, err := c.parse(args)
	if err != nil {
		return err
	}
	page, err := cl.Divergences(ctx, f)
	if err != nil {
		return remoteError(err)
	}
	if c.json() {
		return printJSON(stdout, page)
	}
	t := newTable(stdout, "ID", "DATASET", "TARGET", "KEY", "KIND", "STATE", "DETECTED", "RESOLVED", "REPAIR")
	for _, d := range page.Items {
		t.row(d.ID, d.Dataset, d.Target, d.Key, d.Kind, d.State, fmtTime(d.DetectedAt), fmtTime(d.ResolvedAt), d.RepairID)
	}
	if err := t.flush(); err != nil {
		return err
	}
	nextPage(stderr, page.NextCursor)
	return nil
}

func cmdRepairsList(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c := newRemoteCmd("repairs list", stderr)
	var f reconcile.RepairFilter
	c.fs.StringVar(&f.Dataset, "dataset", "", "only this dataset")
	c.fs.StringVar(&f.Target, "target", "", "only this target")
	c.fs.StringVar(&f.State, "state", "", "only this state: pending, published, verified, failed, rejected, reverted, superseded or dry_run")
	c.fs.IntVar(&f.Limit, "limit", 0, "at most this many (default: the server's, 100; at most 1000)")
	c.fs.StringVar(&f.Cursor, "cursor", "", "the next page, as a previous listing said")
	_, cl, err := c.parse(args)
	if err != nil {
		return err
	}
	page, err := cl.Repairs(ctx, f)
	if err != nil {
		return remoteError(err)
	}
	if c.json() {
		return printJSON(stdout, page)
	}
	if err := printRepairs(stdout, page.Items); err != nil {
		return err
	}
	nextPage(stderr, page.NextCursor)
	return nil
}

func printRepairs(w io.Writer, rs []reconcile.RepairView) error {
	t := newTable(w, "ID", "DATASET", "TARGET", "KEY", "KIND", "ACTION", "STATE", "ACTOR", "CREATED", "REASON")
	for _, r := range rs {
		t.row(r.ID, r.Dataset, r.Target, r.Key, r.Kind, r.Action, r.State, r.Actor, fmtTime(r.CreatedAt), r.Reason)
	}
	return t.flush()
}

func cmdRepairsShow(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c := newRemoteCmd("repairs show", stderr)
	pos, cl, err := c.parse(args, "ID")
	if err != nil {
		return err
	}
	r, err := cl.Repair(ctx, pos[0])
	if err != nil {
		return remoteError(err)
	}
	if c.json() {
		return printJSON(stdout, r)
	}
	printRepair(stdout, r)
	return nil
}

// printRepair shows one repair, field by field, then its event.
func printRepair(w io.Writer, r reconcile.RepairView) {
	t := newTable(w, "FIELD", "VALUE")
	for _, f := range [][2]string{
		{"id", r.ID}, {"dataset", r.Dataset}, {"target", r.Target}, {"key", r.Key}, {"kind", r.Kind},
		{"action", r.Action}, {"state", r.State}, {"mode", r.Mode}, {"actor", r.Actor}, {"reason", r.Reason},
		{"divergence", r.DivergenceID}, {"source version", r.SourceVersion},
		{"expected digest", digestText(r.ExpectedDigest)}, {"previous digest", digestText(r.PreviousDigest)},
		{"created", fmtTime(r.CreatedAt)}, {"updated", fmtTime(r.UpdatedAt)}, {"published", fmtTime(r.PublishedAt)},
		{"verify by", fmtTime(r.VerifyBy)}, {"decided", fmtTime(r.DecidedAt)},
		{"reverts", r.Reverts}, {"reverted by", r.RevertedBy},
	} {
		t.row(f[0], f[1])
	}
	t.flush()
	if len(r.Event) > 0 {
		fmt.Fprintf(w, "\nevent:\n%s\n", indentJSON(r.Event))
	}
}

func digestText(d compare.Digest) string {
	if d.IsZero() {
		return ""
	}
	return d.String()
}

func indentJSON(raw json.RawMessage) string {
	var b bytes.Buffer
	if err := json.Indent(&b, raw, "  ", "  "); err != nil {
		return string(raw)
	}
	return "  " + b.String()
}

// cmdRepairsDecide is approve, reject and revert: one line saying what
// became of the repair.
func cmdRepairsDecide(op string) func(context.Context, []string, io.Writer, io.Writer) error {
	return func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
		c := newRemoteCmd("repairs "+op, stderr)
		var reason *string
		if op == "reject" {
			reason = c.fs.String("reason", "", "why, for the audit log")
		}
		pos, cl, err := c.parse(args, "ID")
		if err != nil {
			return err
		}
		id := pos[0]
		var r reconcile.RepairView
		switch op {
		case "approve":
			r, err = cl.Approve(ctx, id)
		case "reject":
			r, err = cl.Reject(ctx, id, *reason)
		case "revert":
			r, err = cl.Revert(ctx, id)
		}
		if err != nil {
			return remoteError(err)
		}
		if c.json() {
			return printJSON(stdout, r)
		}
		switch op {
		case "approve":
			fmt.Fprintf(stdout, "repair %s approved by %s: %s, %s %s/%s key %s\n", r.ID, r.Actor, r.State, r.Action, r.Dataset, r.Target, r.Key)
		case "reject":
			fmt.Fprintf(stdout, "repair %s rejected by %s\n", r.ID, r.Actor)
		case "revert":
			fmt.Fprintf(stdout, "repair %s reverted by %s: compensating repair %s (%s) %s\n", r.Reverts, r.Actor, r.ID, r.Action, r.State)
		}
		return nil
	}
}

func cmdKeysInspect(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c := newRemoteCmd("keys inspect", stderr)
	pos, cl, err := c.parse(args, "DATASET", "KEY")
	if err != nil {
		return err
	}
	x, err := cl.Explain(ctx, pos[0], pos[1])
	if err != nil {
		return remoteError(err)
	}
	if c.json() {
		return printJSON(stdout, x)
	}
	printExplanation(stdout, x)
	return nil
}

// printExplanation shows a key section by section: the source and its
// history, the targets, then the key's divergences, repairs and audit.
func printExplanation(w io.Writer, x api.Explanation) {
	fmt.Fprintf(w, "dataset %s key %s", x.Dataset, x.Key)
	if len(x.Fields) > 0 {
		fmt.Fprintf(w, " %s", x.Fields)
	}
	fmt.Fprintln(w)

	fmt.Fprintln(w, "\nSOURCE")
	t := newTable(w, "VERSION", "DIGEST", "DELETED", "EVENT TIME", "SEEN")
	for _, h := range x.History {
		t.row(h.Version, digestText(h.Digest), fmt.Sprint(h.Deleted), fmtTime(h.EventTime), fmtTime(h.SeenAt))
	}
	if len(x.History) == 0 && x.Source != nil {
		h := x.Source
		t.row(h.Version, digestText(h.Digest), fmt.Sprint(h.Deleted), fmtTime(h.EventTime), fmtTime(h.SeenAt))
	}
	t.flush()

	fmt.Fprintln(w, "\nTARGETS")
	t = newTable(w, "TARGET", "VERSION", "DIGEST", "REFLECTS", "IN SYNC", "WINDOW", "OPEN DIVERGENCE", "REPAIR")
	for _, tv := range x.Targets {
		version, digest := "", ""
		if tv.Head != nil {
			version, digest = tv.Head.Version, digestText(tv.Head.Digest)
			if tv.Head.Deleted {
				digest = "(deleted)"
			}
		}
		open, rep := "", ""
		if tv.Open != nil {
			open, rep = tv.Open.Kind+" "+tv.Open.ID, tv.Open.RepairID
		}
		t.row(tv.Name, version, digest, x.VersionVector[tv.Name].Reflects, yesNo(tv.InSync), fmtTime(tv.WindowDeadline), open, rep)
	}
	t.flush()

	if len(x.Divergences) > 0 {
		fmt.Fprintln(w, "\nDIVERGENCES")
		t = newTable(w, "ID", "TARGET", "KIND", "STATE", "DETECTED", "RESOLVED", "REPAIR")
		for _, d := range x.Divergences {
			t.row(d.ID, d.Target, d.Kind, d.State, fmtTime(d.DetectedAt), fmtTime(d.ResolvedAt), d.RepairID)
		}
		t.flush()
	}
	if len(x.Repairs) > 0 {
		fmt.Fprintln(w, "\nREPAIRS")
		t = newTable(w, "ID", "TARGET", "KIND", "ACTION", "STATE", "ACTOR", "CREATED", "REASON")
		for _, r := range x.Repairs {
			t.row(r.ID, r.Target, r.Kind, r.Action, r.State, r.Actor, fmtTime(r.CreatedAt), r.Reason)
		}
		t.flush()
	}
	if len(x.Audit) > 0 {
		fmt.Fprintln(w, "\nAUDIT")
		t = newTable(w, "SEQ", "TIME", "ACTOR", "ACTION", "TARGET", "REPAIR", "DETAIL")
		for _, r := range x.Audit {
			t.row(fmt.Sprint(r.Seq), fmtTime(r.Time), r.Actor, r.Action, r.Target, r.RepairID, r.Detail)
		}
		t.flush()
	}
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
