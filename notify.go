package vendoroauth

import (
	"fmt"
	"strings"

	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend/model"
)

// notify applies what an app write does to its webhooks, after the write's
// fields are in next (before is the app as it was, nil for a new one):
//   - a change of where the app's own secrets go (notify_url, from the
//     rows' roles) must give those secrets again (notify_secret), so a
//     writer who may change notify_url but does not know the secret
//     cannot have deliveries signed with it sent where they choose; the
//     rule of checkDestination, for the fields the app holds itself;
//   - a notify_secret given is bound to the notify_url it is written with;
//   - an app given a notify_url receives the events after this write, not
//     the feed's history.
func (w *appWrite) notify(before, next *model.App) error {
	if before != nil {
		if changed := before.AppDestinationChanges(next); len(changed) > 0 {
			var missing []string
			for _, f := range before.AppSecretsSet() {
				if _, ok := w.req.Data[f]; !ok {
					missing = append(missing, f)
				}
			}
			if len(missing) > 0 {
				return &userError{msg: fmt.Sprintf("this write changes where the app's webhooks go: %s; give %s again in the same write (or set it to \"\" with notify_url=\"\" to stop the webhooks)",
					strings.Join(changed, ", "), strings.Join(missing, ", "))}
			}
		}
	}
	if _, given := w.req.Data["notify_secret"]; given {
		next.BindNotify()
	}
	if next.NotifyURL != "" && (before == nil || before.NotifyURL == "") {
		last, err := w.b.creds.FeedLast(w.ctx, w.req.Storage, w.name)
		if err != nil {
			return err
		}
		next.NotifyFrom = last
	}
	if next.NotifyURL == "" {
		next.NotifyFrom, next.NotifyBound = 0, nil
	}
	return nil
}
