package api

import (
	"fmt"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/recon-dev/recon/reconcile"
	"github.com/recon-dev/recon/state"
)

// Divergences and repairs list newest first, filtered, in pages whose
// opaque cursor leads to the next; bad filters are 400.
func TestListings(t *testing.T) {
	f := newFixture(t, "approve")
	s := serve(t, f.options(testTokens(t)))
	var ids []string
	for id := 1; id <= 5; id++ {
		ids = append(ids, f.missing(id).ID)
	}
	// Key 5 converges: its divergence resolves, its repair is superseded.
	f.change("wh", 1, map[string]any{"id": 5, "amount": "12.50", "status": "new"})
	f.after(time.Second)

	var seen []string
	cursor := ""
	for pages := 0; ; pages++ {
		if pages > 5 {
			t.Fatal("paging does not end")
		}
		var page DivergencePage
		s.getJSON("/api/v1/divergences?state=open&limit=2&cursor="+url.QueryEscape(cursor), viewerSecret, &page)
		for _, d := range page.Items {
			if d.State != "open" || d.Kind != "missing" || d.Dataset != "orders" || d.Target != "wh" || len(d.Event) == 0 {
				t.Errorf("divergence %+v", d)
			}
			seen = append(seen, d.Key)
		}
		if page.NextCursor == "" {
			break
		}
		cursor = page.NextCursor
	}
	if fmt.Sprint(seen) != "[4 3 2 1]" {
		t.Errorf("open divergences, newest first, over pages of 2: %v", seen)
	}
	var page DivergencePage
	s.getJSON("/api/v1/divergences?state=resolved&dataset=orders&target=wh&kind=missing", viewerSecret, &page)
	if len(page.Items) != 1 || page.Items[0].Key != "5" || page.Items[0].ResolvedAt.IsZero() || page.NextCursor != "" {
		t.Errorf("resolved divergences %+v", page)
	}
	s.getJSON("/api/v1/divergences?dataset=customers", viewerSecret, &page)
	if page.Items == nil || len(page.Items) != 0 {
		t.Errorf("another dataset's divergences: %+v", page)
	}

	var repairs RepairPage
	s.getJSON("/api/v1/repairs?state=pending", viewerSecret, &repairs)
	if len(repairs.Items) != 4 || repairs.Items[0].ID != ids[3] || repairs.Items[0].State != state.RepairPending {
		t.Errorf("pending repairs %+v", repairs)
	}
	s.getJSON("/api/v1/repairs?state=superseded", viewerSecret, &repairs)
	if len(repairs.Items) != 1 || repairs.Items[0].ID != ids[4] || repairs.Items[0].Reason == "" {
		t.Errorf("superseded repairs %+v", repairs)
	}
	var one reconcile.RepairView
	s.getJSON("/api/v1/repairs/"+ids[0], viewerSecret, &one)
	if one.ID != ids[0] || one.Key != "1" || one.Action != "upsert" || one.ExpectedDigest.IsZero() {
		t.Errorf("repair %+v", one)
	}

	for _, tc := range []struct {
		path   string
		status int
		want   string
	}{
		{"/api/v1/divergences?state=closed", 400, `state "closed"`},
		{"/api/v1/divergences?kind=stale", 400, `kind "stale"`},
		{"/api/v1/divergences?cursor=%21%21", 400, "bad cursor"},
		{"/api/v1/divergences?limit=0", 400, "limit"},
		{"/api/v1/divergences?datset=orders", 400, `unknown parameter "datset"`},
		{"/api/v1/repairs?state=done", 400, `state "done"`},
		{"/api/v1/repairs?kind=missing", 400, `unknown parameter "kind"`},
		{"/api/v1/repairs/nope", 404, `repair "nope": not found`},
	} {
		status, _, body := s.do("GET", tc.path, viewerSecret, "")
		wantError(t, tc.path, status, body, tc.status, tc.want)
	}
}

// GET keys/{dataset}/{key} explains a key by its canonical string,
// URL-escaped in the path.
func TestExplainKey(t *testing.T) {
	f := newFixture(t, "approve")
	s := serve(t, f.options(testTokens(t)))
	rep := f.missing(7)
	// The explanation holds compare values, which are rendered and not read
	// back: decode what the test checks.
	var got struct {
		Dataset       string                           `json:"dataset"`
		Key           string                           `json:"key"`
		Source        *reconcile.HeadView              `json:"source"`
		VersionVector map[string]reconcile.VectorEntry `json:"version_vector"`
		Targets       []struct {
			Name   string                    `json:"name"`
			InSync bool                      `json:"in_sync"`
			Open   *reconcile.OpenDivergence `json:"open_divergence"`
		} `json:"targets"`
		Repairs []reconcile.RepairView `json:"repairs"`
		Audit   []state.AuditRecord    `json:"audit"`
	}
	s.getJSON("/api/v1/keys/orders/7", viewerSecret, &got)
	if got.Dataset != "orders" || got.Key != "7" || got.Source == nil || got.Source.Version != "107" ||
		got.VersionVector["pg"].Version != "107" || len(got.Repairs) != 1 || got.Repairs[0].ID != rep.ID || len(got.Audit) == 0 {
		t.Errorf("explanation %+v", got)
	}
	if len(got.Targets) != 1 || got.Targets[0].InSync || got.Targets[0].Open == nil || got.Targets[0].Open.RepairID != rep.ID {
		t.Errorf("explanation's targets %+v", got.Targets)
	}

	// A key whose value holds a slash: canonical "a%2Fb", in the path "a%252Fb".
	f.change("pg", 500, map[string]any{"id": "a/b", "amount": "1.00", "status": "new"})
	got.Key = ""
	s.getJSON("/api/v1/keys/orders/"+url.PathEscape("a%2Fb"), viewerSecret, &got)
	if got.Key != "a%2Fb" || got.Source == nil || got.Source.Version != "500" {
		t.Errorf("explanation of a%%2Fb: %+v", got)
	}

	status, _, body := s.do("GET", "/api/v1/keys/customers/7", viewerSecret, "")
	wantError(t, "unknown dataset", status, body, http.StatusNotFound, `dataset "customers": not found`)
	status, _, body = s.do("GET", "/api/v1/keys/orders/8", viewerSecret, "")
	wantError(t, "unknown key", status, body, http.StatusNotFound, "not found")
	status, _, body = s.do("GET", "/api/v1/keys/orders/a/b", viewerSecret, "")
	wantError(t, "an unescaped slash", status, body, http.StatusNotFound, "no such endpoint")
}

func TestGuards(t *testing.T) {
	f := newFixture(t, "auto")
	s := serve(t, f.options(testTokens(t)))
	var g struct {
		Items []reconcile.GuardStatus `json:"items"`
	}
	s.getJSON("/api/v1/guards", viewerSecret, &g)
	if len(g.Items) != 1 || g.Items[0].Dataset != "orders" || g.Items[0].Tripped {
		t.Errorf("guards %+v", g)
	}
}
