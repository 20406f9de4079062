// Package tokenclient requests tokens from OAuth2 token endpoints (RFC 6749
// section 3.2).
//
// It is written on net/http rather than golang.org/x/oauth2 because the
// vendors this plugin serves need what x/oauth2 cannot do: client
// credentials in raw (unescaped) Basic auth, JSON request bodies, extra
// request headers such as API keys, and expires_in sent as a float or a
// string.
//
// Everything this package returns is safe to log: error messages never hold
// the client secret, grant parameters, header values, or a token from the
// response, even when the vendor echoes them back.
package tokenclient
