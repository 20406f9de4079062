package backend

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

// Storage beside a credential's entry, written without rewriting it:
// status/<name> holds its last vendor error, authz/<name>/<state hash> its
// open authorizations (seal-wrapped: they hold PKCE verifiers).
const (
	StatusPrefix = "status/"
	AuthzPrefix  = "authz/"
)

func problemKey(name string) string { return StatusPrefix + name }

func authzKey(name, state string) string {
	sum := sha256.Sum256([]byte(state))
	return AuthzPrefix + name + "/" + hex.EncodeToString(sum[:])
}

// Problem returns the last failed vendor call recorded for name, or nil.
func (m *Manager) Problem(ctx context.Context, s logical.Storage, name string) (*Problem, error) {
	raw, err := s.Get(ctx, problemKey(name))
	if err != nil {
		return nil, fmt.Errorf("reading the status of credential %q: %w", name, err)
	}
	if raw == nil {
		if e, err := readEntry(ctx, s, name); err == nil && e != nil && e.legacy != nil && e.legacy.Problem.LastError != "" {
			return &e.legacy.Problem, nil
		}
		return nil, nil
	}
	var p Problem
	if err := json.Unmarshal(raw.Value, &p); err != nil {
		return nil, fmt.Errorf("decoding the status of credential %q: %w", name, err)
	}
	return &p, nil
}

func writeProblem(ctx context.Context, s logical.Storage, name string, p *Problem) error {
	raw, err := json.Marshal(p)
	if err != nil {
		return err
	}
	if err := s.Put(ctx, &logical.StorageEntry{Key: problemKey(name), Value: raw}); err != nil {
		return fmt.Errorf("storing the status of credential %q: %w: %w", name, ErrStorageWrite, err)
	}
	return nil
}

// recordProblem stores a failed vendor call, apart from the secrets.
func (m *Manager) recordProblem(ctx context.Context, s logical.Storage, name string, gerr *GrantError, at time.Time) error {
	m.problems.Store(name, struct{}{})
	return writeProblem(ctx, s, name, &Problem{LastError: gerr.Err.Error(), LastErrorCode: gerr.VendorCode(), LastErrorAt: at})
}

// clearProblem removes the recorded error after a success, if this node
// recorded one (a problem older than the last refresh is not shown
// anyway).
func (m *Manager) clearProblem(ctx context.Context, s logical.Storage, name string) {
	if _, had := m.problems.LoadAndDelete(name); had {
		_ = s.Delete(ctx, problemKey(name))
	}
}

func writeAuthorization(ctx context.Context, s logical.Storage, name, state string, a *Authorization) error {
	raw, err := json.Marshal(a)
	if err != nil {
		return err
	}
	if err := s.Put(ctx, &logical.StorageEntry{Key: authzKey(name, state), Value: raw, SealWrap: true}); err != nil {
		return fmt.Errorf("storing an authorization of credential %q: %w: %w", name, ErrStorageWrite, err)
	}
	return nil
}

// readAuthorization returns the open authorization of name for state, or
// nil; a version 1 entry's inline ones count too.
func readAuthorization(ctx context.Context, s logical.Storage, name, state string, e *Entry) (*Authorization, error) {
	raw, err := s.Get(ctx, authzKey(name, state))
	if err != nil {
		return nil, fmt.Errorf("reading an authorization of credential %q: %w", name, err)
	}
	if raw == nil {
		if e != nil && e.legacy != nil {
			return e.legacy.Authorizations[state], nil
		}
		return nil, nil
	}
	var a Authorization
	if err := json.Unmarshal(raw.Value, &a); err != nil {
		return nil, fmt.Errorf("decoding an authorization of credential %q: %w", name, err)
	}
	return &a, nil
}

// deleteAuthorization removes one authorization of name, inline or not.
func deleteAuthorization(ctx context.Context, s logical.Storage, name, state string, e *Entry) error {
	if e != nil && e.legacy != nil {
		delete(e.legacy.Authorizations, state)
	}
	if err := s.Delete(ctx, authzKey(name, state)); err != nil {
		return fmt.Errorf("deleting an authorization of credential %q: %w", name, err)
	}
	return nil
}

// legacyOpen is how many unexpired authorizations a version 1 entry e
// keeps inline (until its next write moves them to their own keys).
func legacyOpen(e *Entry, now time.Time) int {
	if e == nil || e.legacy == nil {
		return 0
	}
	n := 0
	for _, a := range e.legacy.Authorizations {
		if a != nil && !now.After(a.ExpiresAt) {
			n++
		}
	}
	return n
}

// openAuthorizations lists name's open authorization keys, dropping the
// expired ones, and returns how many remain, with e's inline ones.
func (m *Manager) openAuthorizations(ctx context.Context, s logical.Storage, name string, e *Entry) (int, error) {
	prefix := AuthzPrefix + name + "/"
	keys, err := s.List(ctx, prefix)
	if err != nil {
		return 0, fmt.Errorf("listing the authorizations of credential %q: %w", name, err)
	}
	open := 0
	now := m.now()
	for _, k := range keys {
		raw, err := s.Get(ctx, prefix+k)
		if err != nil {
			return 0, fmt.Errorf("reading an authorization of credential %q: %w", name, err)
		}
		var a Authorization
		if raw == nil || json.Unmarshal(raw.Value, &a) != nil || now.After(a.ExpiresAt) {
			_ = s.Delete(ctx, prefix+k)
			continue
		}
		open++
	}
	open += legacyOpen(e, now)
	return open, nil
}

// deleteRecords removes name's status and open authorizations.
func deleteRecords(ctx context.Context, s logical.Storage, name string) error {
	if err := s.Delete(ctx, problemKey(name)); err != nil {
		return fmt.Errorf("deleting the status of credential %q: %w", name, err)
	}
	prefix := AuthzPrefix + name + "/"
	keys, err := s.List(ctx, prefix)
	if err != nil {
		return fmt.Errorf("listing the authorizations of credential %q: %w", name, err)
	}
	for _, k := range keys {
		if err := s.Delete(ctx, prefix+k); err != nil {
			return fmt.Errorf("deleting an authorization of credential %q: %w", name, err)
		}
	}
	return nil
}
