package vendoroauth

import (
	"context"
	"net/http"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

// pathMetrics returns metrics: the mount's Prometheus metrics as a raw
// text exposition body, the way Vault's own sys/metrics answers, behind a
// Vault token (bootstrap/policies/vendoroauth-metrics.hcl.tmpl). External
// plugins cannot feed Vault's telemetry, so the plugin serves its own.
func pathMetrics(b *vendorBackend) []*framework.Path {
	return []*framework.Path{
		{
			Pattern: "metrics/?$",
			DisplayAttrs: &framework.DisplayAttributes{
				OperationPrefix: operationPrefix,
				OperationSuffix: "metrics",
			},
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ReadOperation: &framework.PathOperation{
					Callback: b.handleMetrics,
					Summary:  "The mount's metrics in Prometheus's text format.",
					// The node that does the work (calls vendors, refreshes
					// in the background, delivers webhooks) is the one whose
					// counters mean something.
					ForwardPerformanceStandby:   true,
					ForwardPerformanceSecondary: true,
					DisplayAttrs:                &framework.DisplayAttributes{OperationVerb: "read"},
				},
			},
			HelpSynopsis:    pathMetricsHelpSyn,
			HelpDescription: pathMetricsHelpDesc,
		},
	}
}

func (b *vendorBackend) handleMetrics(_ context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
	body, contentType, err := b.creds.MetricsText(req.Storage, b.writable())
	if err != nil {
		return nil, err
	}
	return &logical.Response{Data: map[string]interface{}{
		logical.HTTPStatusCode:         http.StatusOK,
		logical.HTTPContentType:        contentType,
		logical.HTTPRawBody:            body,
		logical.HTTPCacheControlHeader: "no-store",
	}}, nil
}

const pathMetricsHelpSyn = `The mount's metrics, in Prometheus's text exposition format.`

const pathMetricsHelpDesc = `
Counters and gauges of this mount, as Prometheus scrapes them (a raw text
body, like sys/metrics?format=prometheus): token reads by outcome, vendor
requests by host, grant and outcome with their duration, credentials and
connections by app and state, rotated refresh tokens held in memory (must be
0), the background refresher's queue and lag, how much of a token's life was
used before it was replaced, events and webhook deliveries, build info.

No label ever holds a credential's or connection's name: drill down with
status/<app>. Scrape it with a token of bootstrap/policies/
vendoroauth-metrics.hcl.tmpl (bootstrap/prometheus/prometheus.yml).
`
