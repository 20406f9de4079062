package vendoroauth

import (
	"context"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend"
	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend/model"
)

// pathDevice returns device/<name>: connecting an account with the device
// authorization grant (RFC 8628), where there is no web app to redirect
// to. A write starts the flow and returns the code to show the user; the
// plugin polls the vendor in the background and stores the refresh token
// when the user approves; a read shows how it went.
func pathDevice(b *vendorBackend) []*framework.Path {
	return []*framework.Path{{
		Pattern: "device/" + credentialName,
		DisplayAttrs: &framework.DisplayAttributes{
			OperationPrefix: operationPrefix,
			OperationSuffix: "device-authorization",
		},
		Fields: map[string]*framework.FieldSchema{
			fieldName:     {Type: framework.TypeString, Description: "Name of the credential (or <app>/<account> for a new connection).", Required: true},
			fieldScopes:   {Type: framework.TypeCommaStringSlice, Description: "Scopes to ask the user for; default the credential's."},
			fieldApp:      {Type: framework.TypeString, Description: "For a new connection named without its app: its app."},
			fieldMetadata: {Type: framework.TypeKVPairs, Description: "Non-secret key=value pairs merged into the connection's metadata on approval."},
		},
		Operations: map[logical.Operation]framework.OperationHandler{
			logical.UpdateOperation: &framework.PathOperation{
				Callback:                    b.handleDeviceStart,
				Summary:                     "Start a device authorization: returns the user code and where the user enters it.",
				DisplayAttrs:                &framework.DisplayAttributes{OperationVerb: "start"},
				ForwardPerformanceStandby:   true,
				ForwardPerformanceSecondary: true,
			},
			logical.ReadOperation: &framework.PathOperation{
				Callback:                    b.handleDeviceRead,
				Summary:                     "How the device authorization went: pending, approved, denied, expired or failed.",
				DisplayAttrs:                &framework.DisplayAttributes{OperationVerb: "read"},
				ForwardPerformanceStandby:   true,
				ForwardPerformanceSecondary: true,
			},
		},
		HelpSynopsis:    pathDeviceHelpSyn,
		HelpDescription: pathDeviceHelpDesc,
	}}
}

func (b *vendorBackend) handleDeviceStart(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	if resp := rejectUnknownFields(req, d); resp != nil {
		return resp, nil
	}
	if !b.writable() {
		return nil, logical.ErrReadOnly
	}
	name := d.Get(fieldName).(string)
	var scopes []string
	for _, s := range d.Get(fieldScopes).([]string) {
		scopes = append(scopes, strings.Fields(s)...)
	}
	flow, err := b.creds.StartDevice(ctx, req.Storage, name, backend.DeviceRequest{
		Scopes: scopes, App: strings.TrimSpace(d.Get(fieldApp).(string)), Metadata: d.Get(fieldMetadata).(map[string]string),
	})
	if err != nil {
		return tokenError(mountOf(req), name, err)
	}
	return &logical.Response{Data: deviceData(flow)}, nil
}

func (b *vendorBackend) handleDeviceRead(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	flow, err := b.creds.Device(ctx, req.Storage, d.Get(fieldName).(string))
	if err != nil || flow == nil {
		return nil, err
	}
	data := deviceData(flow)
	data["detail"] = strings.ReplaceAll(flow.Detail, backend.MountPlaceholder, mountOf(req))
	return &logical.Response{Data: data}, nil
}

func deviceData(f *model.DeviceFlow) map[string]interface{} {
	return map[string]interface{}{
		"user_code":                 f.UserCode,
		"verification_uri":          f.VerificationURI,
		"verification_uri_complete": f.VerificationURIComplete,
		fieldExpiresAt:              f.ExpiresAt.UTC().Format(time.RFC3339),
		"interval":                  int64(f.Interval.Seconds()),
		"status":                    f.State,
		"detail":                    f.Detail,
	}
}

const pathDeviceHelpSyn = `Connect an account with the device flow (RFC 8628).`

const pathDeviceHelpDesc = `
A write asks the vendor's device authorization endpoint (device_authorization_url,
or the issuer's) for a user code, and returns user_code, verification_uri
(and verification_uri_complete) and expires_at: show them to the user, who
approves on another device. The active node polls the vendor at its interval
(slower after slow_down) and, on approval, stores the refresh token and the
access token (creating the connection <app>/<account> if needed). A read
shows status: pending, approved, denied, expired or failed, until a day
after the codes expire; then the flow is deleted, as it is with its
credential (a delete also stops a pending flow). The device code is never
shown.
`
