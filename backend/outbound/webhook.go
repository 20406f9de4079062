package outbound

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/go-cleanhttp"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend/model"
	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend/tokenclient"
)

// WebhookTimeout bounds one webhook delivery, from dialling to the last
// byte of the receiver's answer.
const WebhookTimeout = 10 * time.Second

// maxReceiverAnswer is how much of a receiver's answer is read (and
// discarded) so the connection can be reused.
const maxReceiverAnswer = 4 << 10

// Webhook is one signed delivery of an event to a receiver.
type Webhook struct {
	// URL is the app's notify_url.
	URL string
	// Secret is the app's notify_secret, which signs the delivery; Bound
	// is where it was written for. Nothing is sent unless Bound allows
	// URL.
	Secret string
	Bound  *model.Destination
	// ID is the event's id (webhook-id: the same in every retry, for the
	// receiver to deduplicate); Timestamp is this attempt's time
	// (webhook-timestamp), which the signature covers.
	ID        string
	Timestamp time.Time
	Body      []byte
	UserAgent string
}

// WebhookError is a receiver's answer that was not a 2xx: a redirect is
// not followed, it fails the delivery too.
type WebhookError struct {
	StatusCode int
}

func (e *WebhookError) Error() string {
	if e.StatusCode/100 == 3 {
		return fmt.Sprintf("the receiver answered HTTP %d, a redirect, which is not followed: set notify_url to where it points", e.StatusCode)
	}
	return fmt.Sprintf("the receiver answered HTTP %d", e.StatusCode)
}

// webhookClient sends deliveries: its own pooled transport, TLS 1.2 at
// least, no redirects, WebhookTimeout. One per gate, made on first use.
type webhookClient struct {
	mu sync.Mutex
	hc *http.Client
}

// closeIdle closes the connections kept to receivers (the backend closed).
func (w *webhookClient) closeIdle() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.hc != nil {
		w.hc.CloseIdleConnections()
	}
}

func (w *webhookClient) client() *http.Client {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.hc == nil {
		hc := cleanhttp.DefaultPooledClient()
		if tr, ok := hc.Transport.(*http.Transport); ok {
			if tr.TLSClientConfig == nil {
				tr.TLSClientConfig = &tls.Config{}
			}
			tr.TLSClientConfig.MinVersion = tls.VersionTLS12
			tr.MaxIdleConnsPerHost = 4
		}
		// A redirect would send the signed event, and what it says of a
		// customer, to a host nobody configured.
		hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
		hc.Timeout = WebhookTimeout
		w.hc = hc
	}
	return w.hc
}

// Webhook signs w with the Standard Webhooks library and posts it, unless
// the notify secret was written for another URL (then nothing is sent: the
// signature is a value derived from the secret). It returns the
// receiver's status on a 2xx, a *WebhookError for any other answer, or a
// transport error that names the receiver without its query.
func (g *Gate) Webhook(ctx context.Context, w Webhook) error {
	if err := checkWebhook(w); err != nil {
		return err
	}
	wh, err := standardwebhooks.NewWebhook(w.Secret)
	if err != nil {
		// Never quote the library's error: it may hold the secret's text.
		return errors.New("notify_secret is not a usable Standard Webhooks secret; write a new one to the app")
	}
	sig, err := wh.Sign(w.ID, w.Timestamp, w.Body)
	if err != nil {
		return errors.New("signing the delivery failed")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.URL, bytes.NewReader(w.Body))
	if err != nil {
		return fmt.Errorf("notify_url %s cannot be used: %w", model.DisplayURL(w.URL), errors.Unwrap(err))
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(standardwebhooks.HeaderWebhookID, w.ID)
	req.Header.Set(standardwebhooks.HeaderWebhookTimestamp, strconv.FormatInt(w.Timestamp.Unix(), 10))
	req.Header.Set(standardwebhooks.HeaderWebhookSignature, sig)
	if w.UserAgent != "" {
		req.Header.Set("User-Agent", w.UserAgent)
	}
	resp, err := g.webhooks.client().Do(req)
	if err != nil {
		// *url.Error quotes the whole URL, query included, which may hold
		// a receiver's key: only its cause is kept.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("posting to %s: %w", model.DisplayURL(w.URL), err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxReceiverAnswer)) // only to reuse the connection
	_ = resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return &WebhookError{StatusCode: resp.StatusCode}
	}
	return nil
}

// checkWebhook refuses a delivery whose secret may not sign for its URL,
// or whose URL is not https (http only on loopback).
func checkWebhook(w Webhook) error {
	ref := tokenclient.SecretRef(model.NotifyRef)
	if w.Bound == nil {
		return &model.MisdirectedError{Secret: ref, Endpoint: w.URL, Trust: model.SystemTrust}
	}
	if !w.Bound.Allows(w.URL, model.SystemTrust, "") {
		d := *w.Bound
		return &model.MisdirectedError{Secret: ref, Endpoint: w.URL, Trust: model.SystemTrust, Bound: &d}
	}
	if err := model.ValidateNotifyURL(w.URL); err != nil {
		return &model.MisdirectedError{Secret: ref, Endpoint: w.URL, Trust: model.SystemTrust}
	}
	return nil
}
