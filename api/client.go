package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/recon-dev/recon/reconcile"
)

// Client calls a running recon's API. The CLI's remote commands use it.
type Client struct {
	base  *url.URL
	token string
	hc    *http.Client
}

// NewClient returns a client of the API at server (http:// or https://
// host:port, the address of http.listen) presenting token. hc may be nil
// (http.DefaultClient).
func NewClient(server, token string, hc *http.Client) (*Client, error) {
	u, err := url.Parse(server)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("server %q: want http://host:port or https://host:port", server)
	}
	if hc == nil {
		hc = http.DefaultClient
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	return &Client{base: u, token: token, hc: hc}, nil
}

// Error is an error answer of the API: its status and message.
type Error struct {
	Status  int
	Message string
}

func (e *Error) Error() string {
	return fmt.Sprintf("%d %s: %s", e.Status, http.StatusText(e.Status), e.Message)
}

// do sends one request to path (below /api/v1, its segments escaped with
// url.PathEscape) and decodes a 200 answer's
// JSON into out. Any other answer is an *Error.
func (c *Client) do(ctx context.Context, method, path string, q url.Values, body, out any) error {
	u, err := url.Parse(c.base.String() + "/api/v1/" + path)
	if err != nil {
		return err
	}
	u.RawQuery = q.Encode()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return err
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("%s %s: reading the answer: %w", method, u.Path, err)
	}
	if resp.StatusCode != http.StatusOK {
		return answerError(resp.StatusCode, data)
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("%s %s: the answer is not what this client expects: %w", method, u.Path, err)
	}
	return nil
}

// answerError reads an error answer: the API's JSON error, or the first
// line of whatever stood in the way (a proxy, another server).
func answerError(status int, data []byte) error {
	var eb ErrorBody
	if json.Unmarshal(data, &eb) == nil && eb.Error != "" {
		return &Error{Status: status, Message: eb.Error}
	}
	msg, _, _ := strings.Cut(strings.TrimSpace(string(data)), "\n")
	if len(msg) > 200 {
		msg = msg[:200] + "…"
	}
	if msg == "" {
		msg = "(empty answer)"
	}
	return &Error{Status: status, Message: msg}
}

// AuditRecords reads up to limit audit records with a seq above since
// (limit 0: the server's default).
func (c *Client) AuditRecords(ctx context.Context, since uint64, limit int) (AuditPage, error) {
	q := url.Values{}
	if since > 0 {
		q.Set("since", strconv.FormatUint(since, 10))
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var page AuditPage
	err := c.do(ctx, "GET", "audit", q, nil, &page)
	return page, err
}

// VerifyAudit has the server verify its audit log's hash chain.
func (c *Client) VerifyAudit(ctx context.Context) (AuditVerification, error) {
	var v AuditVerification
	err := c.do(ctx, "GET", "audit/verify", nil, nil, &v)
	return v, err
}

// Divergences reads one page of the divergences f selects (f.Limit 0: the
// server's default).
func (c *Client) Divergences(ctx context.Context, f reconcile.DivergenceFilter) (DivergencePage, error) {
	q := url.Values{}
	setNonEmpty(q, "dataset", f.Dataset)
	setNonEmpty(q, "target", f.Target)
	setNonEmpty(q, "kind", f.Kind)
	setNonEmpty(q, "state", f.State)
	setNonEmpty(q, "cursor", f.Cursor)
	if f.Limit > 0 {
		q.Set("limit", strconv.Itoa(f.Limit))
	}
	var page DivergencePage
	err := c.do(ctx, "GET", "divergences", q, nil, &page)
	return page, err
}

// Repairs reads one page of the repairs f selects.
func (c *Client) Repairs(ctx context.Context, f reconcile.RepairFilter) (RepairPage, error) {
	q := url.Values{}
	setNonEmpty(q, "dataset", f.Dataset)
	setNonEmpty(q, "target", f.Target)
	setNonEmpty(q, "state", f.State)
	setNonEmpty(q, "cursor", f.Cursor)
	if f.Limit > 0 {
		q.Set("limit", strconv.Itoa(f.Limit))
	}
	var page RepairPage
	err := c.do(ctx, "GET", "repairs", q, nil, &page)
	return page, err
}

// Repair reads one repair.
func (c *Client) Repair(ctx context.Context, id string) (reconcile.RepairView, error) {
	var r reconcile.RepairView
	err := c.do(ctx, "GET", "repairs/"+url.PathEscape(id), nil, nil, &r)
	return r, err
}

// Approve approves a pending repair as the token's holder.
func (c *Client) Approve(ctx context.Context, id string) (reconcile.RepairView, error) {
	var r reconcile.RepairView
	err := c.do(ctx, "POST", "repairs/"+url.PathEscape(id)+"/approve", nil, struct{}{}, &r)
	return r, err
}

// Reject rejects a pending repair as the token's holder, for reason.
func (c *Client) Reject(ctx context.Context, id, reason string) (reconcile.RepairView, error) {
	var r reconcile.RepairView
	err := c.do(ctx, "POST", "repairs/"+url.PathEscape(id)+"/reject", nil, RejectRequest{Reason: reason}, &r)
	return r, err
}

// Revert reverts a published repair as the token's holder; the answer is
// the compensating repair.
func (c *Client) Revert(ctx context.Context, id string) (reconcile.RepairView, error) {
	var r reconcile.RepairView
	err := c.do(ctx, "POST", "repairs/"+url.PathEscape(id)+"/revert", nil, struct{}{}, &r)
	return r, err
}

// Explanation is the answer of GET keys/{dataset}/{key} as a client reads
// it: reconcile.KeyExplanation, with the key's fields and the rows left as
// the JSON the server rendered (their values are rendered, not read back).
type Explanation struct {
	reconcile.KeyExplanation
	Fields    json.RawMessage     `json:"fields,omitempty"`
	SourceRow json.RawMessage     `json:"source_row,omitempty"`
	Targets   []TargetExplanation `json:"targets"`
}

// TargetExplanation is a key's state in one target, its row as JSON.
type TargetExplanation struct {
	reconcile.TargetView
	Row json.RawMessage `json:"row,omitempty"`
}

// Explain reads everything the server knows about one key; key is the
// canonical key (as listings show it), escaped here for the path.
func (c *Client) Explain(ctx context.Context, dataset, key string) (Explanation, error) {
	var x Explanation
	err := c.do(ctx, "GET", "keys/"+url.PathEscape(dataset)+"/"+url.PathEscape(key), nil, nil, &x)
	return x, err
}

// Guards reads the blast-radius guard of every dataset.
func (c *Client) Guards(ctx context.Context) ([]reconcile.GuardStatus, error) {
	var out struct {
		Items []reconcile.GuardStatus `json:"items"`
	}
	err := c.do(ctx, "GET", "guards", nil, nil, &out)
	return out.Items, err
}

func setNonEmpty(q url.Values, name, v string) {
	if v != "" {
		q.Set(name, v)
	}
}
