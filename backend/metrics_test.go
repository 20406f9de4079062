package backend

import (
	"errors"
	"net"
	"testing"

	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend/tokenclient"
)

// A vendor request's outcome label comes from a fixed list: a vendor that
// invents error codes cannot grow the metric.
func TestOutcomeLabelsAreBounded(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		err  error
		want string
	}{
		{nil, OutcomeOK},
		{&tokenclient.Error{StatusCode: 400, Code: "invalid_grant"}, "invalid_grant"},
		{&tokenclient.Error{StatusCode: 401, Code: "invalid_client"}, "invalid_client"},
		{&tokenclient.Error{StatusCode: 400, Code: "customer_4711_is_blocked"}, OutcomeOtherError},
		{&tokenclient.Error{StatusCode: 429, Code: "too_many"}, OutcomeRateLimited},
		{&tokenclient.Error{StatusCode: 503}, OutcomeOtherError},
		{&tokenclient.TransportError{Err: &net.OpError{Op: "dial", Err: errors.New("refused")}}, OutcomeTransport},
		{errors.New("something else"), OutcomeOtherError},
	} {
		if got := outcomeOf(c.err); got != c.want {
			t.Errorf("outcomeOf(%v) = %q, want %q", c.err, got, c.want)
		}
	}
}
