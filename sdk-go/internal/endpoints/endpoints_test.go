package endpoints_test

import (
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/secinfra/secinfra/sdk-go/internal/endpoints"
)

const (
	a = "https://a.test:8443"
	b = "https://b.test:8443"
	c = "https://c.test:8443"
)

// fakeClock is a monotonic clock the test moves by hand.
type fakeClock struct{ now time.Duration }

func (f *fakeClock) read() time.Duration { return f.now }

func listed(t *testing.T, clock *fakeClock, cooldown time.Duration, urls ...string) *endpoints.Set {
	t.Helper()
	s, err := endpoints.New(urls, endpoints.Config{Order: endpoints.Listed, Cooldown: cooldown, Monotonic: clock.read})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestNewChecksEverySetting(t *testing.T) {
	tests := []struct {
		name    string
		urls    []string
		cfg     endpoints.Config
		wantErr string
	}{
		{name: "empty", urls: nil, wantErr: "give at least one URL"},
		{name: "plain-http", urls: []string{"http://a.test"}, wantErr: "must be https://"},
		{name: "duplicate", urls: []string{a, a + "/"}, cfg: endpoints.Config{Order: endpoints.Listed}, wantErr: "listed twice"},
		{name: "user-info", urls: []string{"https://u:pw@a.test"}, wantErr: "must not carry user-info"},
		{name: "max-below-cooldown", urls: []string{a}, cfg: endpoints.Config{Cooldown: 5 * time.Second, CooldownMax: time.Second}, wantErr: "at least endpoint_cooldown"},
		{name: "negative", urls: []string{a}, cfg: endpoints.Config{Cooldown: -time.Second}, wantErr: "must be above 0"},
		{name: "random-needs-a-source", urls: []string{a, b}, wantErr: "random source is required"},
		{name: "one-url", urls: []string{a + "/"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := endpoints.New(tt.urls, tt.cfg)
			if tt.wantErr == "" {
				if err != nil || !reflect.DeepEqual(s.URLs(), []string{a}) {
					t.Fatalf("got %v, %v", s, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
			}
			if strings.Contains(err.Error(), "pw") {
				t.Fatalf("the error echoes the password: %v", err)
			}
		})
	}
}

func TestRandomHomeRotatesTheList(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	counts := map[string]int{}
	for range 300 {
		s, err := endpoints.New([]string{a, b, c}, endpoints.Config{Intn: r.IntN})
		if err != nil {
			t.Fatal(err)
		}
		urls := s.URLs()
		counts[urls[0]]++
		want := map[string][]string{a: {a, b, c}, b: {b, c, a}, c: {c, a, b}}[urls[0]]
		if !reflect.DeepEqual(urls, want) {
			t.Fatalf("order %v, want %v", urls, want)
		}
	}
	for _, u := range []string{a, b, c} {
		if counts[u] < 70 || counts[u] > 130 {
			t.Fatalf("homes %v: not spread evenly", counts)
		}
	}
}

func TestChooseHomeWhileItWorksThenTheNextNotCooling(t *testing.T) {
	clock := &fakeClock{}
	s := listed(t, clock, 4*time.Second, a, b, c)
	steps := []struct {
		name   string
		before func()
		want   string
	}{
		{name: "home", before: func() {}, want: a},
		{name: "home-failed", before: func() { s.Record(a, true) }, want: b},
		{name: "both-failed", before: func() { s.Record(b, true) }, want: c},
		{name: "home-cooled-down", before: func() { clock.now += 4 * time.Second }, want: a},
	}
	for _, step := range steps {
		step.before()
		if got := s.Choose(); got != step.want {
			t.Fatalf("%s: chose %s, want %s", step.name, got, step.want)
		}
	}
}

func TestCooldownDoublesUpToTheMaxAndResets(t *testing.T) {
	clock := &fakeClock{}
	s := listed(t, clock, 0, a, b)
	var waits []time.Duration
	for range 7 {
		s.Record(a, true)
		waits = append(waits, s.States()[0].CoolingFor)
	}
	want := []time.Duration{1, 2, 4, 8, 16, 30, 30}
	for i := range want {
		want[i] *= time.Second
	}
	if !reflect.DeepEqual(waits, want) {
		t.Fatalf("cooldowns %v, want %v", waits, want)
	}
	s.Record(a, false)
	if st := s.States()[0]; st.Failures != 0 || st.CoolingFor != 0 {
		t.Fatalf("after another outcome: %+v", st)
	}
}

func TestAllCoolingChoosesTheOldestFailure(t *testing.T) {
	clock := &fakeClock{}
	s := listed(t, clock, 30*time.Second, a, b, c)
	for _, u := range []string{b, c, a} {
		s.Record(u, true)
		clock.now += time.Second
	}
	if got := s.Choose(); got != b {
		t.Fatalf("chose %s, want %s (the oldest failure)", got, b)
	}
	one := listed(t, clock, 0, a)
	one.Record(a, true)
	if got := one.Choose(); got != a {
		t.Fatalf("one endpoint: chose %s", got)
	}
}

func TestIsFailure(t *testing.T) {
	for status, want := range map[int]bool{0: true, 502: true, 503: true, 504: true, 500: false, 429: false, 404: false, 200: false} {
		if got := endpoints.IsFailure(status); got != want {
			t.Errorf("IsFailure(%d) = %v, want %v", status, got, want)
		}
	}
}
