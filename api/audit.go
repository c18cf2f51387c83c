package api

import (
	"math"
	"net/http"
	"strconv"

	"github.com/recon-dev/recon/state"
)

// AuditPage is the answer of GET /api/v1/audit: records in seq order. Pass
// NextSince as since to read on; no items means the log holds nothing newer.
type AuditPage struct {
	Items     []state.AuditRecord `json:"items"`
	NextSince uint64              `json:"next_since"`
}

// auditRecords serves GET audit?since=SEQ&limit=N: up to N records with a
// seq greater than SEQ (default 0: from the first).
func (h *Handler) auditRecords(w http.ResponseWriter, r *http.Request, _ Token) error {
	q, err := query(r, "since", "limit")
	if err != nil {
		return err
	}
	var since uint64
	if s := q.Get("since"); s != "" {
		if since, err = strconv.ParseUint(s, 10, 64); err != nil {
			return badRequest("since %q: want an audit seq, a non-negative integer", s)
		}
	}
	limit, err := limitParam(q)
	if err != nil {
		return err
	}
	page := AuditPage{Items: []state.AuditRecord{}, NextSince: since}
	if since < math.MaxUint64 {
		recs, err := h.store.AuditRecords(since+1, limit)
		if err != nil {
			return err
		}
		if len(recs) > 0 {
			page.Items, page.NextSince = recs, recs[len(recs)-1].Seq
		}
	}
	writeJSON(w, http.StatusOK, page)
	return nil
}

// AuditVerification is the answer of GET /api/v1/audit/verify, as
// `recon audit verify -o json` prints it. A broken chain is a result, so
// it answers 200 with ok false and the first broken link.
type AuditVerification struct {
	OK bool `json:"ok"`
	state.AuditVerification
}

func (h *Handler) auditVerify(w http.ResponseWriter, r *http.Request, _ Token) error {
	if _, err := query(r); err != nil {
		return err
	}
	v, err := h.store.VerifyAudit()
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, AuditVerification{OK: v.OK(), AuditVerification: v})
	return nil
}
