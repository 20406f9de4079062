package tokenclient

import (
	"context"
	"errors"
)

// Token type hints of RFC 7009 section 2.1.
const (
	HintRefreshToken = "refresh_token"
	HintAccessToken  = "access_token"
)

// Revocation is one RFC 7009 revocation request.
type Revocation struct {
	// Endpoint is the revocation endpoint's absolute http or https URL.
	Endpoint string
	// Token is the token to revoke. It is secret.
	Token string
	// TokenTypeHint is sent as token_type_hint unless empty: usually
	// HintRefreshToken.
	TokenTypeHint string
}

// String describes the revocation without its token.
func (rv Revocation) String() string {
	return "tokenclient.Revocation{Endpoint: " + displayURL(rv.Endpoint) + ", TokenTypeHint: " + rv.TokenTypeHint + ", Token: " + present(rv.Token) + "}"
}

// GoString is String, so that %#v does not print the token either.
func (rv Revocation) GoString() string { return rv.String() }

// Revoke asks the server to revoke a token (RFC 7009), authenticating the
// client exactly as auth does at the token endpoint: its ClientID,
// ClientSecret, AuthStyle, BasicEncoding, BodyFormat, Headers, Signer,
// KeyID, SigningAlgorithm, Audience and TLS apply; its GrantType, Params,
// ExtraParams, Scopes and ResponseFields do not. A client assertion's
// audience is auth's TokenURL unless Audience says otherwise.
//
// Any 2xx answer is success: RFC 7009 answers 200 both for a revoked
// token and for one the server did not know. Otherwise the error is an
// *Error naming the "revocation endpoint" (Code unsupported_token_type
// means the server cannot revoke that kind of token; a 503 carries
// RetryAfter), a *TransportError, or a plain error for a request that
// cannot be sent. Classify sorts them.
func (c *Client) Revoke(ctx context.Context, auth Request, rv Revocation) error {
	if rv.Token == "" {
		return errors.New("the revocation request has no token")
	}
	params := map[string]string{"token": rv.Token}
	if rv.TokenTypeHint != "" {
		params["token_type_hint"] = rv.TokenTypeHint
	}
	cl := call{
		noun: "revocation endpoint", urlNoun: "revocation endpoint URL",
		endpoint: rv.Endpoint, params: params,
	}
	a, b, secrets, err := c.post(ctx, auth, cl)
	if err != nil {
		return err
	}
	if a.status >= 200 && a.status < 300 {
		// The body is not specified; only an error object in it counts.
		if fields, _ := decodeBody(a.header, a.body, secrets); fields != nil {
			if _, _, _, isErr := errorFields(fields, secrets); !isErr {
				return nil
			}
		} else {
			return nil
		}
	}
	_, err = parseFields(a, b.u, cl.noun, secrets)
	return err
}
