package outbound

import (
	"net/url"
	"strings"
	"time"
)

// Kinds of vendor request that are not a grant, as an Observer is told
// them in place of a grant type.
const (
	KindRevocation          = "revocation"
	KindDeviceAuthorization = "device_authorization"
	KindDevicePoll          = "device_code"
)

// Observer is told of every vendor request the gate sent (not of one it
// refused: nothing left): the credential it was for, the endpoint's host,
// the grant type (or a Kind), how long it took and how it ended. It must be
// cheap and never block.
type Observer interface {
	VendorRequest(name, host, grant string, took time.Duration, err error)
}

// Observe makes o the gate's observer.
func (g *Gate) Observe(o Observer) { g.observe = o }

// record returns the func that reports a request of the credential name
// to endpoint of grant, started at start, once its error is known.
func (g *Gate) record(name, endpoint, grant string, start time.Time) func(*error) {
	return func(errp *error) {
		if g.observe == nil {
			return
		}
		host := endpoint
		if u, err := url.Parse(endpoint); err == nil && u.Host != "" {
			host = u.Host
		}
		g.observe.VendorRequest(name, host, strings.TrimPrefix(grant, "urn:ietf:params:oauth:grant-type:"), time.Since(start), *errp)
	}
}
