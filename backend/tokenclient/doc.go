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
//
// Beyond the token request (Exchange), the same client authentication
// serves RFC 7009 revocation (Revoke) and the RFC 8628 device flow
// (StartDeviceAuthorization, PollDeviceToken); Discover reads RFC 8414 /
// OpenID Connect metadata. Client authentication may be a secret (Basic or
// body), a client assertion JWT (private_key_jwt with a crypto.Signer,
// client_secret_jwt with HMAC; RFC 7523), or a client certificate (RFC
// 8705), and a Request's TLSConfig adds a client certificate and a CA
// bundle. Assertions, private keys and device codes are redacted like
// secrets. Classify sorts every error by who must act.
package tokenclient
