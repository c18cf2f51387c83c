package api

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"net/http"
	"strings"
)

// Role is what a token may do. Each role may do what the weaker ones may.
type Role int

// Roles, weakest first.
const (
	Viewer   Role = iota + 1 // reads
	Approver                 // also approves, rejects and reverts repairs
	Admin                    // everything
)

func (r Role) String() string {
	switch r {
	case Viewer:
		return "viewer"
	case Approver:
		return "approver"
	case Admin:
		return "admin"
	}
	return fmt.Sprintf("role(%d)", int(r))
}

// ParseRole reads a role as config writes it: viewer, approver or admin.
func ParseRole(s string) (Role, error) {
	for _, r := range []Role{Viewer, Approver, Admin} {
		if r.String() == s {
			return r, nil
		}
	}
	return 0, fmt.Errorf("unknown role %q: want viewer, approver or admin", s)
}

// Token is one configured bearer token: its holder's name, the SHA-256 of
// the secret the holder presents, and its role. The secret itself is never
// held.
type Token struct {
	Name string
	Hash [sha256.Size]byte
	Role Role
}

// ParseToken builds a Token from config's strings: hexHash is the SHA-256 of
// the secret as 64 hex digits, in either case.
func ParseToken(name, hexHash, role string) (Token, error) {
	t := Token{Name: name}
	if name == "" {
		return t, fmt.Errorf("token without a name")
	}
	b, err := hex.DecodeString(hexHash)
	if err != nil || len(b) != sha256.Size {
		return t, fmt.Errorf("token %s: sha256: want %d hex digits", name, 2*sha256.Size)
	}
	copy(t.Hash[:], b)
	if t.Role, err = ParseRole(role); err != nil {
		return t, fmt.Errorf("token %s: %w", name, err)
	}
	return t, nil
}

// authenticate returns the token whose hash the request's bearer secret
// has. It hashes the secret and compares it with every configured hash in
// constant time, so neither the comparison nor the number of comparisons
// tells how close a guess came. ok is false without a bearer secret or when
// none matches (and always with no token configured).
func authenticate(tokens []Token, r *http.Request) (tok Token, presented, ok bool) {
	secret, presented := bearer(r.Header.Get("Authorization"))
	if !presented {
		return Token{}, false, false
	}
	sum := sha256.Sum256([]byte(secret))
	found := -1
	for i := range tokens {
		if subtle.ConstantTimeCompare(sum[:], tokens[i].Hash[:]) == 1 {
			found = i
		}
	}
	if found < 0 {
		return Token{}, true, false
	}
	return tokens[found], true, true
}

// bearer extracts the secret of an "Authorization: Bearer <secret>" header.
// The scheme is case-insensitive (RFC 7235); an empty secret is none.
func bearer(h string) (string, bool) {
	scheme, secret, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	secret = strings.TrimSpace(secret)
	return secret, secret != ""
}
