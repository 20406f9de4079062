package vendoroauth

import (
	"context"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

// pathStatus returns status: every credential's health and counters, so an
// operator can see the plugin work without a metrics stack.
func pathStatus(b *vendorBackend) []*framework.Path {
	return []*framework.Path{{
		Pattern: "status/?$",
		DisplayAttrs: &framework.DisplayAttributes{
			OperationPrefix: operationPrefix,
			OperationSuffix: "status",
		},
		Operations: map[logical.Operation]framework.OperationHandler{
			logical.ReadOperation: &framework.PathOperation{
				ForwardPerformanceStandby:   true,
				ForwardPerformanceSecondary: true,
				Callback:                    b.handleStatus,
				Summary:                     "Per-credential health and counters (no secrets).",
				DisplayAttrs:                &framework.DisplayAttributes{OperationVerb: "read"},
			},
		},
		HelpSynopsis:    pathStatusHelpSyn,
		HelpDescription: pathStatusHelpDesc,
	}}
}

func (b *vendorBackend) handleStatus(ctx context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
	names, err := b.creds.List(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	creds := make(map[string]interface{}, len(names))
	for _, name := range names {
		e, err := b.creds.Get(ctx, req.Storage, name)
		if err != nil {
			return nil, err
		}
		if e == nil {
			continue
		}
		st := b.creds.Stats(name)
		provider := e.Config.Provider
		creds[name] = map[string]interface{}{
			fieldProvider:           provider,
			"reads":                 st.Reads,
			"cache_hits":            st.CacheHits,
			"upstream_grants":       st.Grants,
			"failures":              st.Failures,
			"token_expires_at":      formatTime(tokenExpiry(e)),
			"last_refreshed_at":     formatTime(e.Status.LastRefreshedAt),
			"last_error_code":       e.Status.LastErrorCode,
			"needs_reauthorization": e.Status.NeedsReauthorization,
			"next_refresh_at":       formatTime(b.creds.NextRefresh(name)),
			"backoff_until":         formatTime(laterThanNow(st.RetryAt)),
		}
	}
	return &logical.Response{Data: map[string]interface{}{
		"credentials":   creds,
		"counted_since": b.started.UTC().Format(time.RFC3339),
	}}, nil
}

func laterThanNow(t time.Time) time.Time {
	if t.Before(time.Now()) {
		return time.Time{}
	}
	return t
}

const pathStatusHelpSyn = `Show every credential's health and counters.`

const pathStatusHelpDesc = `
For each credential: reads, cache_hits, upstream_grants and failures by vendor
error code (counted on this node since the plugin started, counted_since),
token_expires_at, last_refreshed_at, last_error_code, needs_reauthorization,
next_refresh_at (the proactive refresh, if one is scheduled) and
backoff_until (after failures). No secret is shown.
`
