package store

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend/model"
)

// A device flow, device/<name> (seal-wrapped: it holds the device code),
// while the user decides and for a day after. Unversioned: its fields only
// ever grow.

func deviceKey(name string) string { return DevicePrefix + name }

// Device returns name's device flow, or nil.
func (st Store) Device(ctx context.Context, name string) (*model.DeviceFlow, error) {
	raw, err := st.s.Get(ctx, deviceKey(name))
	if err != nil {
		return nil, fmt.Errorf("reading the device flow of credential %q: %w", name, err)
	}
	if raw == nil {
		return nil, nil
	}
	var d model.DeviceFlow
	if err := json.Unmarshal(raw.Value, &d); err != nil {
		return nil, fmt.Errorf("decoding the device flow of credential %q: %w", name, err)
	}
	return &d, nil
}

// PutDevice stores name's device flow.
func (st Store) PutDevice(ctx context.Context, name string, d *model.DeviceFlow) error {
	raw, err := json.Marshal(d)
	if err != nil {
		return err
	}
	if err := st.s.Put(ctx, &logical.StorageEntry{Key: deviceKey(name), Value: raw, SealWrap: true}); err != nil {
		return fmt.Errorf("storing the device flow of credential %q: %w: %w", name, ErrWrite, err)
	}
	return nil
}

// DeleteDevice removes name's device flow.
func (st Store) DeleteDevice(ctx context.Context, name string) error {
	if err := st.s.Delete(ctx, deviceKey(name)); err != nil {
		return fmt.Errorf("deleting the device flow of credential %q: %w", name, err)
	}
	return nil
}

// DeviceNames lists the credentials with a device flow.
func (st Store) DeviceNames(ctx context.Context) ([]string, error) {
	names, err := st.listNames(ctx, DevicePrefix)
	if err != nil {
		return nil, fmt.Errorf("listing device flows: %w", err)
	}
	return names, nil
}
