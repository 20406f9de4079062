package tokenclient

import (
	"context"
	"errors"
	"net/url"
	"strings"
)

// post sends a call other than a grant with the Request's client
// authentication, and returns the answer with the secrets to redact from
// whatever is made of it.
func (c *Client) post(ctx context.Context, r Request, cl call) (*answer, *built, []string, error) {
	if c == nil || c.http == nil {
		return nil, nil, nil, errors.New("tokenclient: the Client was not made with New")
	}
	b, err := r.buildCall(ctx, c.userAgent, cl, c.now())
	if err != nil {
		return nil, nil, nil, err
	}
	secrets := b.secrets(r, cl.params)
	a, err := c.roundTrip(ctx, b, cl.noun, r.TLS, secrets, MaxBodyBytes)
	if err != nil {
		return nil, nil, nil, err
	}
	return a, b, secrets, nil
}

// parseFields reads the JSON object a 2xx answer of a non-token endpoint
// holds, or makes the refusal an *Error (or an unusable 2xx a
// *ResponseError) that names the endpoint. extraSecrets names fields of
// the body whose values are secret (a device_code), to redact them from
// any message made from the same body.
func parseFields(a *answer, base *url.URL, noun string, secrets []string, extraSecrets ...string) (map[string]any, error) {
	ok := a.status >= 200 && a.status < 300
	if len(a.body) > MaxBodyBytes {
		if ok {
			return nil, &ResponseError{Endpoint: noun, Reason: "response is larger than 1 MiB"}
		}
		return nil, a.annotate(endpointError(newError(a.status, a.statusText, a.header, base, secrets), noun))
	}
	if a.status >= 300 && a.status < 400 {
		return nil, endpointError(newError(a.status, a.statusText, a.header, base, secrets), noun)
	}
	fields, reason := decodeBody(a.header, a.body, secrets)
	secrets = append(secrets[:len(secrets):len(secrets)], tokensIn(fields)...)
	for _, k := range extraSecrets {
		if s, isStr := fields[k].(string); isStr && s != "" {
			secrets = append(secrets, s)
		}
	}
	if !ok {
		e := endpointError(newError(a.status, a.statusText, a.header, base, secrets), noun)
		if fields != nil {
			e.Code, e.Description, e.ErrorURI, _ = errorFields(fields, secrets)
		}
		return nil, a.annotate(e)
	}
	if fields == nil {
		return nil, &ResponseError{Endpoint: noun, Reason: strings.Replace(reason, "check token_url", "check the "+noun+" URL", 1)}
	}
	if code, desc, uri, isErr := errorFields(fields, secrets); isErr {
		e := endpointError(newError(a.status, a.statusText, a.header, base, secrets), noun)
		e.Code, e.Description, e.ErrorURI = code, desc, uri
		return nil, a.annotate(e)
	}
	return fields, nil
}

func endpointError(e *Error, noun string) *Error {
	if noun != "token endpoint" {
		e.Endpoint = noun
	}
	return e
}
