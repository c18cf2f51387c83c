package api

import (
	"net/http"
	"slices"
	"strings"

	"github.com/recon-dev/recon/reconcile"
)

// DivergencePage is the answer of GET divergences: newest detection first.
// Pass NextCursor as cursor for the next page; "" means this is the last.
type DivergencePage struct {
	Items      []reconcile.DivergenceView `json:"items"`
	NextCursor string                     `json:"next_cursor"`
}

// RepairPage is the answer of GET repairs: newest first, paged as
// DivergencePage.
type RepairPage struct {
	Items      []reconcile.RepairView `json:"items"`
	NextCursor string                 `json:"next_cursor"`
}

// divergences serves GET divergences?dataset=&target=&kind=&state=&limit=&cursor=.
func (h *Handler) divergences(w http.ResponseWriter, r *http.Request, _ Token) error {
	q, err := query(r, "dataset", "target", "kind", "state", "limit", "cursor")
	if err != nil {
		return err
	}
	limit, err := limitParam(q)
	if err != nil {
		return err
	}
	page, err := h.engine.Divergences(reconcile.DivergenceFilter{
		Dataset: q.Get("dataset"), Target: q.Get("target"), Kind: q.Get("kind"), State: q.Get("state"),
		Cursor: q.Get("cursor"), Limit: limit,
	})
	if err != nil {
		return err
	}
	out := DivergencePage{Items: make([]reconcile.DivergenceView, 0, len(page.Divergences)), NextCursor: page.Next}
	for _, d := range page.Divergences {
		out.Items = append(out.Items, reconcile.ViewDivergence(d))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// repairs serves GET repairs?dataset=&target=&state=&limit=&cursor=.
func (h *Handler) repairs(w http.ResponseWriter, r *http.Request, _ Token) error {
	q, err := query(r, "dataset", "target", "state", "limit", "cursor")
	if err != nil {
		return err
	}
	limit, err := limitParam(q)
	if err != nil {
		return err
	}
	page, err := h.engine.Repairs(reconcile.RepairFilter{
		Dataset: q.Get("dataset"), Target: q.Get("target"), State: q.Get("state"),
		Cursor: q.Get("cursor"), Limit: limit,
	})
	if err != nil {
		return err
	}
	out := RepairPage{Items: make([]reconcile.RepairView, 0, len(page.Repairs)), NextCursor: page.Next}
	for _, rec := range page.Repairs {
		out.Items = append(out.Items, reconcile.ViewRepair(rec))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// repair serves GET repairs/{id}.
func (h *Handler) repair(w http.ResponseWriter, r *http.Request, _ Token) error {
	if _, err := query(r); err != nil {
		return err
	}
	rec, err := h.engine.Repair(r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, reconcile.ViewRepair(rec))
	return nil
}

// explainKey serves GET keys/{dataset}/{key}: key is the canonical key
// (values comma-separated; '%', ',' and '/' inside a value percent-encoded),
// itself URL-escaped in the path, so a canonical "a%2Fb" travels as
// "a%252Fb".
func (h *Handler) explainKey(w http.ResponseWriter, r *http.Request, _ Token) error {
	if _, err := query(r); err != nil {
		return err
	}
	x, err := h.engine.Explain(r.PathValue("dataset"), r.PathValue("key"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, x)
	return nil
}

// guards serves GET guards: the blast-radius guard of every dataset,
// sorted by dataset.
func (h *Handler) guards(w http.ResponseWriter, r *http.Request, _ Token) error {
	if _, err := query(r); err != nil {
		return err
	}
	g := h.engine.Guards()
	out := make([]reconcile.GuardStatus, 0, len(g))
	for _, s := range g {
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b reconcile.GuardStatus) int { return strings.Compare(a.Dataset, b.Dataset) })
	writeJSON(w, http.StatusOK, struct {
		Items []reconcile.GuardStatus `json:"items"`
	}{out})
	return nil
}
