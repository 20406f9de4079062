package backend

import (
	"testing"
	"time"

	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend/model"
)

func TestScheduleTouchesOnlyDue(t *testing.T) {
	t.Parallel()
	s := newSchedule()
	t0 := time.Now()
	for i := 0; i < 1000; i++ {
		s.set(string(rune('a'+i%26))+time.Duration(i).String(), t0.Add(time.Duration(i)*time.Minute))
	}
	s.set("early", t0.Add(-time.Second))
	s.set("moved", t0.Add(-time.Second))
	s.set("moved", t0.Add(time.Hour*100)) // rescheduled: the old heap item is skipped
	got := s.popDue(t0)
	if len(got) != 2 || got[0] != "early" {
		t.Errorf("popDue = %v, want [early a0s]", got)
	}
	if len(s.popDue(t0)) != 0 {
		t.Errorf("a name was popped twice")
	}
}

// A name rescheduled many times between pops must not grow the heap without
// bound (a credential refreshed every minute used to leave an item each).
func TestScheduleHeapStaysProportional(t *testing.T) {
	t.Parallel()
	s := newSchedule()
	now := time.Now()
	for i := range 1440 {
		s.set("x", now.Add(time.Duration(i)*time.Minute+model.DefaultKeepAlive))
	}
	if len(s.heap) > 2*len(s.due)+65 {
		t.Errorf("%d heap items for %d scheduled names", len(s.heap), len(s.due))
	}
	if got := s.popDue(now.Add(1440*time.Minute + model.DefaultKeepAlive)); len(got) != 1 || got[0] != "x" {
		t.Errorf("popDue = %v", got)
	}
}
