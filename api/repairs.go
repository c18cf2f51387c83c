package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"unicode/utf8"

	"github.com/recon-dev/recon/reconcile"
)

// MaxReasonBytes bounds a rejection's reason: it goes into the audit log.
const MaxReasonBytes = 1024

// RejectRequest is the body of POST repairs/{id}/reject; the body may be
// left out, for no reason.
type RejectRequest struct {
	Reason string `json:"reason"`
}

// approveRepair serves POST repairs/{id}/approve: the repair is published
// with approved_by the token's name. The answer is the repair as it now
// stands; a repair no longer needed is superseded instead, 409.
func (h *Handler) approveRepair(w http.ResponseWriter, r *http.Request, who Token) error {
	if err := readBody(w, r, nil); err != nil {
		return err
	}
	rec, err := h.engine.ApproveRepair(r.Context(), r.PathValue("id"), who.Name)
	if err != nil {
		return err
	}
	h.log.Info("repair approved", "repair", rec.ID, "dataset", rec.Dataset, "actor", who.Name)
	writeJSON(w, http.StatusOK, reconcile.ViewRepair(rec))
	return nil
}

// rejectRepair serves POST repairs/{id}/reject with an optional JSON body
// {"reason": "..."}.
func (h *Handler) rejectRepair(w http.ResponseWriter, r *http.Request, who Token) error {
	var req RejectRequest
	if err := readBody(w, r, &req); err != nil {
		return err
	}
	switch {
	case len(req.Reason) > MaxReasonBytes:
		return badRequest("reason: at most %d bytes, got %d", MaxReasonBytes, len(req.Reason))
	case !utf8.ValidString(req.Reason):
		return badRequest("reason: not valid UTF-8")
	}
	rec, err := h.engine.RejectRepair(r.Context(), r.PathValue("id"), who.Name, req.Reason)
	if err != nil {
		return err
	}
	h.log.Info("repair rejected", "repair", rec.ID, "dataset", rec.Dataset, "actor", who.Name)
	writeJSON(w, http.StatusOK, reconcile.ViewRepair(rec))
	return nil
}

// revertRepair serves POST repairs/{id}/revert. The answer is the
// compensating repair, published; a second revert is 409.
func (h *Handler) revertRepair(w http.ResponseWriter, r *http.Request, who Token) error {
	if err := readBody(w, r, nil); err != nil {
		return err
	}
	rec, err := h.engine.RevertRepair(r.Context(), r.PathValue("id"), who.Name)
	if err != nil {
		return err
	}
	h.log.Info("repair reverted", "repair", rec.Reverts, "compensating_repair", rec.ID, "dataset", rec.Dataset, "actor", who.Name)
	writeJSON(w, http.StatusOK, reconcile.ViewRepair(rec))
	return nil
}

// readBody decodes a request's JSON body into v, strictly: unknown fields
// and trailing data are errors. An empty body leaves v as it is; v nil
// accepts only an empty body or an empty object.
func readBody(w http.ResponseWriter, r *http.Request, v any) error {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 64<<10))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return &statusError{http.StatusRequestEntityTooLarge, fmt.Sprintf("request body over %d bytes", tooBig.Limit)}
		}
		return badRequest("reading the request body: %v", err)
	}
	if len(body) == 0 {
		return nil
	}
	if v == nil {
		v = &struct{}{}
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return badRequest("request body: %v", err)
	}
	if dec.More() {
		return badRequest("request body: data after the JSON object")
	}
	return nil
}
