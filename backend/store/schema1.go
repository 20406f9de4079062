package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend/model"
)

// Entries and apps written by older releases. Schema 1 (and the
// development-only 0) kept a credential's last error and open
// authorizations inline in its entry; schema 2 before bindings recorded
// only the endpoints a refresh token and an app's previous client secret
// were for (refresh_token_for, revoke_url_for, previous_for). Such an entry
// is read as it is, what it keeps differently carried beside it
// (model.Entry.Upgrade, model.App.Upgrade): the inline parts are served as
// if they were at their own keys and moved there by the entry's next
// write, and the backend binds its secrets (BindUpgrade) when it resolves
// it, which that write stores.

// v1Entry is what schema 1 kept that version 2 moved out.
type v1Entry struct {
	Status struct {
		LastError     string    `json:"last_error"`
		LastErrorCode string    `json:"last_error_code"`
		LastErrorAt   time.Time `json:"last_error_at"`
	} `json:"status"`
	Authorizations map[string]*model.Authorization `json:"authorizations"`
	Config         struct {
		UsePKCE         *bool  `json:"use_pkce"`
		RefreshTokenFor string `json:"refresh_token_for"`
		RevokeURLFor    string `json:"revoke_url_for"`
	} `json:"config"`
}

// decodeEntry decodes a stored entry, upgrading an older one in memory;
// the next write stores it at the current version.
func decodeEntry(raw []byte) (*model.Entry, error) {
	var e model.Entry
	if err := json.Unmarshal(raw, &e); err != nil {
		return nil, err
	}
	if e.Version > model.SchemaVersion {
		return nil, fmt.Errorf("entry has schema version %d but this plugin knows up to %d; upgrade the plugin", e.Version, model.SchemaVersion)
	}
	var old v1Entry
	if err := json.Unmarshal(raw, &old); err != nil {
		return nil, err
	}
	if e.Version == model.SchemaVersion {
		if old.Config.RefreshTokenFor != "" {
			// Written before bindings: the endpoints its refresh token
			// was recorded for, until the backend binds it.
			e.Upgrade = &model.Upgrade{RefreshTokenFor: old.Config.RefreshTokenFor, RevokeURLFor: old.Config.RevokeURLFor}
		}
		return &e, nil
	}
	e.Upgrade = &model.Upgrade{
		Problem:        model.Problem{LastError: old.Status.LastError, LastErrorCode: old.Status.LastErrorCode, LastErrorAt: old.Status.LastErrorAt},
		Authorizations: old.Authorizations,
	}
	if e.Status.NeedsReauthorization && e.Status.ReauthReason == "" {
		e.Status.ReauthReason = old.Status.LastError
	}
	// Version 1 stored use_pkce=false by leaving it out; PKCE was off
	// unless set, and stays so for entries written then.
	if old.Config.UsePKCE == nil {
		off := false
		e.Config.UsePKCE = &off
	}
	e.Version = model.SchemaVersion
	return &e, nil
}

// moveSchema1 moves a version 1 entry's last error and open
// authorizations to their own keys.
func (st Store) moveSchema1(ctx context.Context, name string, l *model.Upgrade) error {
	if l.Problem.LastError != "" {
		if err := st.PutProblem(ctx, name, &l.Problem); err != nil {
			return err
		}
	}
	for state, a := range l.Authorizations {
		if err := st.PutAuthorization(ctx, name, state, a); err != nil {
			return err
		}
	}
	return nil
}

// schema1Problem is the last error e keeps inline, or nil.
func schema1Problem(e *model.Entry) *model.Problem {
	if e == nil || e.Upgrade == nil || e.Upgrade.Problem.LastError == "" {
		return nil
	}
	p := e.Upgrade.Problem
	return &p
}

// schema1Authorization is e's inline authorization for state, or nil.
func schema1Authorization(e *model.Entry, state string) *model.Authorization {
	if e == nil || e.Upgrade == nil {
		return nil
	}
	return e.Upgrade.Authorizations[state]
}

// schema1Open is how many unexpired authorizations e keeps inline.
func schema1Open(e *model.Entry, now time.Time) int {
	if e == nil || e.Upgrade == nil {
		return 0
	}
	n := 0
	for _, a := range e.Upgrade.Authorizations {
		if a != nil && !now.After(a.ExpiresAt) {
			n++
		}
	}
	return n
}

// upgradeApp carries what an app written before bindings recorded.
func upgradeApp(a *model.App, raw []byte) error {
	var old struct {
		PreviousFor string `json:"previous_for"`
	}
	if err := json.Unmarshal(raw, &old); err != nil {
		return err
	}
	if old.PreviousFor != "" && a.PreviousBound == nil {
		a.Upgrade = &model.Upgrade{PreviousFor: old.PreviousFor}
	}
	return nil
}
