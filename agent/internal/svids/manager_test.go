package svids_test

import (
	"testing"

	"github.com/secinfra/secinfra/agent/internal/attest"
	"github.com/secinfra/secinfra/agent/internal/svids"
)

func TestMatchNeedsEverySelectorOfAnEntry(t *testing.T) {
	uid := attest.Selector{Type: "unix", Value: "uid:1000"}
	gid := attest.Selector{Type: "unix", Value: "gid:1000"}
	path := attest.Selector{Type: "unix", Value: "path:/usr/bin/billing"}
	state := &svids.State{
		Entries: []svids.Entry{
			{ID: "both", SpiffeID: "spiffe://td/both", Selectors: []attest.Selector{uid, path}},
			{ID: "uid", SpiffeID: "spiffe://td/uid", Selectors: []attest.Selector{uid}},
			{ID: "unsigned", SpiffeID: "spiffe://td/unsigned", Selectors: []attest.Selector{gid}},
			{ID: "none", SpiffeID: "spiffe://td/none"}, // no selectors: matches no one
		},
		SVIDs: map[string]*svids.SVID{
			"both": {EntryID: "both"}, "uid": {EntryID: "uid"}, "none": {EntryID: "none"},
		},
	}
	tests := []struct {
		name        string
		observed    []attest.Selector
		wantMatched bool
		wantIDs     []string
	}{
		{name: "all-of-both", observed: []attest.Selector{uid, gid, path}, wantMatched: true, wantIDs: []string{"both", "uid"}},
		{name: "uid-only", observed: []attest.Selector{uid}, wantMatched: true, wantIDs: []string{"uid"}},
		{name: "matched-not-signed-yet", observed: []attest.Selector{gid}, wantMatched: true},
		{name: "nothing", observed: []attest.Selector{{Type: "unix", Value: "uid:0"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			matched, found := state.Match(tt.observed)
			if matched != tt.wantMatched {
				t.Fatalf("matched = %v, want %v", matched, tt.wantMatched)
			}
			var ids []string
			for _, f := range found {
				ids = append(ids, f.EntryID)
			}
			if len(ids) != len(tt.wantIDs) {
				t.Fatalf("got %v, want %v", ids, tt.wantIDs)
			}
			for i := range ids {
				if ids[i] != tt.wantIDs[i] {
					t.Fatalf("got %v, want %v (entry order)", ids, tt.wantIDs)
				}
			}
		})
	}
}
