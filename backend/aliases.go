package backend

import (
	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend/model"
	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend/store"
)

// The model moved to backend/model and storage to backend/store; these
// names keep callers building while they move.
type (
	Config        = model.Config
	Discovered    = model.Discovered
	Settings      = model.Settings
	Entry         = model.Entry
	Token         = model.Token
	Status        = model.Status
	Problem       = model.Problem
	Authorization = model.Authorization
	App           = model.App
	DeviceFlow    = model.DeviceFlow
)

// Moved constants, kept for callers while they move.
const (
	SchemaVersion        = model.SchemaVersion
	DefaultTTL           = model.DefaultTTL
	DefaultExpirySkew    = model.DefaultExpirySkew
	DefaultKeepAlive     = model.DefaultKeepAlive
	DefaultSecretOverlap = model.DefaultSecretOverlap

	AuthNone                = model.AuthNone
	AuthPrivateKeyJWT       = model.AuthPrivateKeyJWT
	AuthClientSecretJWT     = model.AuthClientSecretJWT
	AuthTLSClient           = model.AuthTLSClient
	AuthSelfSignedTLSClient = model.AuthSelfSignedTLSClient

	DevicePending  = model.DevicePending
	DeviceApproved = model.DeviceApproved
	DeviceDenied   = model.DeviceDenied
	DeviceExpired  = model.DeviceExpired
	DeviceFailed   = model.DeviceFailed

	StoragePrefix = store.EntryPrefix
	AppPrefix     = store.AppPrefix
	AuthzPrefix   = store.AuthzPrefix
	KeysPrefix    = store.KeysPrefix
	DevicePrefix  = store.DevicePrefix
	StatusPrefix  = store.StatusPrefix
)

// Moved functions, kept for callers while they move.
var (
	Lease                  = model.Lease
	VendorCallsPerLifetime = model.VendorCallsPerLifetime
	ValidateTokenURL       = model.ValidateTokenURL
	ValidateRedirectURIs   = model.ValidateRedirectURIs
	AppOf                  = model.AppOf
	AuthStyles             = model.AuthStyles
)
