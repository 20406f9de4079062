// Package store is the one place that touches the mount's storage: each
// stored kind (entry, app, status, authorization, signing keys, device
// flow, index, probe) has its key, its codec and its version in a file of its
// own here, and the reading and moving of schema 1 entries is in
// schema1.go. Nothing else names a storage key or calls storage.
package store

import (
	"context"
	"errors"
	"strings"

	"github.com/hashicorp/vault/sdk/logical"
)

// Store is the mount's storage, as the kinds it holds.
type Store struct{ s logical.Storage }

// Of is s as a Store.
func Of(s logical.Storage) Store { return Store{s: s} }

// ErrWrite marks a failed storage write. In background work it means this
// node may have lost leadership: Vault does not cancel a periodic
// function's context until it returns, so the failed write is the first
// sign, and the work must start nothing more.
var ErrWrite = errors.New("storage write failed")

// The prefixes of the stored kinds. Only this package reads or writes
// under them; tests use them to look at storage as it is.
const (
	EntryPrefix  = "creds/"
	AppPrefix    = "apps/"
	StatusPrefix = "status/"
	AuthzPrefix  = "authz/"
	KeysPrefix   = "keys/"
	DevicePrefix = "device/"
	IndexPrefix  = "index/"
	probeKey     = "probe/tick"
)

// SealWrapped lists the prefixes whose entries hold secrets, for Vault to
// seal-wrap: every kind but status, the index and the probe.
func SealWrapped() []string {
	return []string{EntryPrefix, AppPrefix, AuthzPrefix, KeysPrefix, DevicePrefix}
}

// Changed says what a changed storage key (Vault's invalidation) was: an
// entry (its credential's name) or an app (its name).
func Changed(key string) (entry, app string) {
	if name, ok := strings.CutPrefix(key, EntryPrefix); ok {
		return name, ""
	}
	if name, ok := strings.CutPrefix(key, AppPrefix); ok {
		return "", name
	}
	return "", ""
}

// listNames lists the names under prefix: one level, and one more under
// each folder ("<app>/<account>").
func (st Store) listNames(ctx context.Context, prefix string) ([]string, error) {
	top, err := st.s.List(ctx, prefix)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, k := range top {
		folder, isFolder := strings.CutSuffix(k, "/")
		if !isFolder {
			names = append(names, k)
			continue
		}
		sub, err := st.s.List(ctx, prefix+k)
		if err != nil {
			return nil, err
		}
		for _, acct := range sub {
			if !strings.HasSuffix(acct, "/") {
				names = append(names, folder+"/"+acct)
			}
		}
	}
	return names, nil
}
