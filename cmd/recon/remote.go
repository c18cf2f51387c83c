package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/recon-dev/recon/api"
)

// DefaultServer is where the remote commands find recon's API unless
// --server or RECON_SERVER says otherwise: http.listen's default.
const DefaultServer = "http://127.0.0.1:8080"

// remoteFlags are the flags of every command that calls a running recon's
// API. The token is read from RECON_TOKEN unless --token is given: a flag
// shows in the process list.
type remoteFlags struct {
	fs     *flag.FlagSet
	server string
	token  string
	caFile string
}

func addRemoteFlags(fs *flag.FlagSet) *remoteFlags {
	r := &remoteFlags{fs: fs}
	fs.StringVar(&r.server, "server", "", "recon's HTTP address, http(s)://host:port (env RECON_SERVER; default "+DefaultServer+")")
	fs.StringVar(&r.token, "token", "", "API bearer token (env RECON_TOKEN, preferred: flags show in the process list)")
	fs.StringVar(&r.caFile, "ca-file", "", "PEM CA that signed the server's certificate, for https with a private CA (env RECON_CA_FILE)")
	return r
}

// serverSet reports whether the command was pointed at a server, by flag
// or by RECON_SERVER.
func (r *remoteFlags) serverSet() bool {
	set := false
	r.fs.Visit(func(f *flag.Flag) { set = set || f.Name == "server" })
	return set || os.Getenv("RECON_SERVER") != ""
}

// client builds the API client from the flags and the environment.
func (r *remoteFlags) client() (*api.Client, error) {
	server := firstNonEmpty(r.server, os.Getenv("RECON_SERVER"), DefaultServer)
	token := firstNonEmpty(r.token, os.Getenv("RECON_TOKEN"))
	if token == "" {
		return nil, errors.New("no API token: set RECON_TOKEN (or --token)")
	}
	hc := &http.Client{Timeout: 30 * time.Second}
	if caFile := firstNonEmpty(r.caFile, os.Getenv("RECON_CA_FILE")); caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("--ca-file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--ca-file %s: no PEM certificate found", caFile)
		}
		hc.Transport = &http.Transport{TLSClientConfig: &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool}}
	}
	return api.NewClient(server, token, hc)
}

// remoteError makes a failed API call one line: the HTTP status and the
// API's message, or why the server could not be reached.
func remoteError(err error) error {
	var apiErr *api.Error
	if errors.As(err, &apiErr) {
		return apiErr
	}
	var urlErr *url.Error
	if errors.As(err, &urlErr) {
		return fmt.Errorf("server %s: %w", urlErr.URL, urlErr.Err)
	}
	return err
}

func firstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}

// outputFlag is -o: table (the default, for people) or json (for tools).
func outputFlag(fs *flag.FlagSet) *string {
	return fs.String("o", "table", "output: table or json")
}

func checkOutput(o string) error {
	if o != "table" && o != "json" {
		return fmt.Errorf("-o %q: want table or json", o)
	}
	return nil
}

// parseArgs parses flags, which may come before, between or after the
// positional arguments (recon repairs reject ID --reason "..."), and wants
// exactly the positional arguments named. After "--" everything is
// positional, for a key that starts with "-".
func parseArgs(fs *flag.FlagSet, args []string, positional ...string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
			pos = append(pos, rest...)
			break
		}
		if len(rest) == 0 {
			break
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
	if len(pos) != len(positional) {
		if len(positional) == 0 {
			return nil, fmt.Errorf("unexpected argument %q", pos[0])
		}
		return nil, fmt.Errorf("want %s, got %d argument(s)", strings.Join(positional, " "), len(pos))
	}
	return pos, nil
}

func printJSON(w io.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

// table writes rows under a header, aligned in columns.
type table struct{ tw *tabwriter.Writer }

func newTable(w io.Writer, header ...string) *table {
	t := &table{tw: tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)}
	t.row(header...)
	return t
}

func (t *table) row(cols ...string) {
	for i, c := range cols {
		if c == "" {
			cols[i] = "-"
		}
		cols[i] = strings.NewReplacer("\t", " ", "\n", " ").Replace(cols[i])
	}
	fmt.Fprintln(t.tw, strings.Join(cols, "\t"))
}

func (t *table) flush() error { return t.tw.Flush() }

// fmtTime shows a time in UTC to the second; zero as "-".
func fmtTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02 15:04:05Z")
}
