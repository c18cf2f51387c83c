package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/recon-dev/recon/reconcile"
	"github.com/recon-dev/recon/state"
)

// Prefix is where the API is served; package pipeline mounts the Handler
// on it.
const Prefix = "/api/"

// Paging bounds of list endpoints (limit parameter), the engine's.
const (
	DefaultLimit = reconcile.DefaultPageSize
	MaxLimit     = reconcile.MaxPageSize
)

// Options configure a Handler. Engine and Store are required.
type Options struct {
	// Tokens are the accepted bearer tokens; none means every request is
	// refused with 401.
	Tokens []Token
	// Engine answers for divergences, keys and repairs, and carries out the
	// decisions about repairs.
	Engine *reconcile.Engine
	// Store holds the audit log.
	Store  *state.Store
	Logger *slog.Logger // default: discard
}

// Handler serves /api/v1. It authenticates every request before routing
// it, so without a valid token even an unknown path answers 401.
type Handler struct {
	tokens []Token
	engine *reconcile.Engine
	store  *state.Store
	log    *slog.Logger
	mux    *http.ServeMux
	// methods lists the methods served on each path pattern, for 405s.
	methods map[string][]string
}

// New returns the API handler.
func New(opts Options) (*Handler, error) {
	if opts.Engine == nil || opts.Store == nil {
		return nil, errors.New("api: an engine and a store are required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	h := &Handler{tokens: slices.Clone(opts.Tokens), engine: opts.Engine, store: opts.Store, log: opts.Logger,
		mux: http.NewServeMux(), methods: map[string][]string{}}
	h.routes()
	for path, methods := range h.methods {
		allow := strings.Join(methods, ", ")
		h.mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Allow", allow)
			writeError(w, http.StatusMethodNotAllowed, fmt.Sprintf("method %s not allowed on %s: allowed %s", r.Method, r.URL.Path, allow))
		})
	}
	h.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no such endpoint: %s", r.URL.Path))
	})
	return h, nil
}

func (h *Handler) routes() {
	h.handle("GET", "/api/v1/divergences", Viewer, h.divergences)
	h.handle("GET", "/api/v1/keys/{dataset}/{key}", Viewer, h.explainKey)
	h.handle("GET", "/api/v1/repairs", Viewer, h.repairs)
	h.handle("GET", "/api/v1/repairs/{id}", Viewer, h.repair)
	h.handle("GET", "/api/v1/guards", Viewer, h.guards)
	h.handle("POST", "/api/v1/repairs/{id}/approve", Approver, h.approveRepair)
	h.handle("POST", "/api/v1/repairs/{id}/reject", Approver, h.rejectRepair)
	h.handle("POST", "/api/v1/repairs/{id}/revert", Approver, h.revertRepair)
	h.handle("GET", "/api/v1/audit", Viewer, h.auditRecords)
	h.handle("GET", "/api/v1/audit/verify", Viewer, h.auditVerify)
}

// endpoint serves one authenticated request. A returned error becomes the
// JSON error answer (see statusOf); nothing must have been written then.
type endpoint func(w http.ResponseWriter, r *http.Request, who Token) error

// handle routes method path to ep for tokens of role at least min.
func (h *Handler) handle(method, path string, min Role, ep endpoint) {
	if method == http.MethodGet {
		h.methods[path] = append(h.methods[path], http.MethodGet, http.MethodHead)
	} else {
		h.methods[path] = append(h.methods[path], method)
	}
	h.mux.HandleFunc(method+" "+path, func(w http.ResponseWriter, r *http.Request) {
		who, _ := r.Context().Value(tokenKey{}).(Token)
		if who.Role < min {
			writeError(w, http.StatusForbidden, fmt.Sprintf("token %s has role %s; %s %s needs %s", who.Name, who.Role, method, path, min))
			return
		}
		if err := ep(w, r, who); err != nil {
			h.fail(w, r, who, err)
		}
	})
}

// fail answers an endpoint's error as JSON with its status (see statusOf).
// Failures of recon itself are logged; the others are the caller's.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, who Token, err error) {
	status := statusOf(err)
	if status == http.StatusInternalServerError {
		h.log.Error("api request failed", "method", r.Method, "path", r.URL.Path, "actor", who.Name, "err", err)
	}
	body := ErrorBody{Error: err.Error(), Status: status}
	var conflict *reconcile.ConflictError
	if errors.As(err, &conflict) {
		rep := reconcile.ViewRepair(conflict.Repair)
		body.Repair, body.Replacement = &rep, conflict.Replacement
	}
	writeJSON(w, status, body)
}

type tokenKey struct{}

// ServeHTTP authenticates the request, then routes it.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	tok, presented, ok := authenticate(h.tokens, r)
	if !ok {
		msg := "missing bearer token: send Authorization: Bearer <token>"
		challenge := `Bearer realm="recon"`
		if presented {
			msg = "unknown bearer token"
			challenge += `, error="invalid_token"`
		}
		w.Header().Set("WWW-Authenticate", challenge)
		writeError(w, http.StatusUnauthorized, msg)
		return
	}
	h.mux.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), tokenKey{}, tok)))
}

// ErrorBody is the body of every error answer. A 409 about a repair also
// carries the repair as it now stands and, when it was superseded by a new
// one, the new one's id.
type ErrorBody struct {
	Error       string                `json:"error"`
	Status      int                   `json:"status"`
	Repair      *reconcile.RepairView `json:"repair,omitempty"`
	Replacement string                `json:"replacement,omitempty"`
}

// statusError is an error with the status it answers, for bad parameters.
type statusError struct {
	status int
	msg    string
}

func (e *statusError) Error() string { return e.msg }

func badRequest(format string, args ...any) error {
	return &statusError{http.StatusBadRequest, fmt.Sprintf(format, args...)}
}

// statusOf is the HTTP status an endpoint's error answers with: the
// engine's errors say what went wrong (reconcile/govern.go), the rest is
// recon failing.
func statusOf(err error) int {
	var se *statusError
	switch {
	case errors.As(err, &se):
		return se.status
	case errors.Is(err, reconcile.ErrInvalid), errors.Is(err, reconcile.ErrBadCursor):
		return http.StatusBadRequest
	case errors.Is(err, reconcile.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, reconcile.ErrConflict):
		return http.StatusConflict
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, ErrorBody{Error: msg, Status: status})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		body, _ = json.Marshal(ErrorBody{Error: "rendering the answer: " + err.Error(), Status: status})
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(append(body, '\n'))
}

// query returns the request's query parameters after checking that each is
// one of allowed and given once: a misspelt filter must not silently
// widen a listing.
func query(r *http.Request, allowed ...string) (url.Values, error) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, badRequest("query: %v", err)
	}
	for name, vs := range q {
		if !slices.Contains(allowed, name) {
			if len(allowed) == 0 {
				return nil, badRequest("unknown parameter %q: this endpoint takes none", name)
			}
			return nil, badRequest("unknown parameter %q: want %s", name, strings.Join(allowed, ", "))
		}
		if len(vs) > 1 {
			return nil, badRequest("parameter %q given %d times", name, len(vs))
		}
	}
	return q, nil
}

// limitParam reads limit: 1 to MaxLimit, DefaultLimit when absent.
func limitParam(q url.Values) (int, error) {
	s := q.Get("limit")
	if s == "" {
		return DefaultLimit, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > MaxLimit {
		return 0, badRequest("limit %q: want an integer from 1 to %d", s, MaxLimit)
	}
	return n, nil
}

// oneOfParam reads a parameter that is absent ("") or one of allowed.
func oneOfParam(q url.Values, name string, allowed []string) (string, error) {
	v := q.Get(name)
	if v == "" || slices.Contains(allowed, v) {
		return v, nil
	}
	return "", badRequest("%s %q: want %s", name, v, strings.Join(allowed, ", "))
}
