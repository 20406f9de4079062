package backend

import (
	"context"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend/model"
	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend/store"
)

// Problem returns the last failed vendor call recorded for name, or nil.
func (m *Manager) Problem(ctx context.Context, s logical.Storage, name string) (*model.Problem, error) {
	return store.Of(s).Problem(ctx, name)
}

// recordProblem stores a failed vendor call, apart from the secrets.
func (m *Manager) recordProblem(ctx context.Context, s logical.Storage, name string, gerr *GrantError, at time.Time) error {
	m.problems.Store(name, struct{}{})
	return store.Of(s).PutProblem(ctx, name, &model.Problem{LastError: gerr.Err.Error(), LastErrorCode: gerr.VendorCode(), LastErrorAt: at})
}

// clearProblem removes the recorded error after a success, if this node
// recorded one (a problem older than the last refresh is not shown
// anyway).
func (m *Manager) clearProblem(ctx context.Context, s logical.Storage, name string) {
	if _, had := m.problems.LoadAndDelete(name); had {
		_ = store.Of(s).DeleteProblem(ctx, name)
	}
}

// deleteRecords removes name's status and open authorizations.
func deleteRecords(ctx context.Context, s logical.Storage, name string) error {
	if err := store.Of(s).DeleteProblem(ctx, name); err != nil {
		return err
	}
	return store.Of(s).DeleteAuthorizations(ctx, name)
}
