// Package metrics counts what the agent does, in the Prometheus text format
// on the health listener's /metrics (no client library: a handful of
// counters and gauges).
package metrics

import (
	"fmt"
	"io"
	"sync/atomic"
)

// Agent holds every metric; the zero value is ready. Safe for concurrent use.
type Agent struct {
	SVIDsSigned      atomic.Int64
	SigningFailures  atomic.Int64
	SyncFailures     atomic.Int64
	NodeRenewals     atomic.Int64
	NodeRenewFailed  atomic.Int64
	CallsServed      atomic.Int64
	CallsDenied      atomic.Int64
	CallsInvalid     atomic.Int64
	Entries          atomic.Int64
	SVIDs            atomic.Int64
	NodeSVIDNotAfter atomic.Int64 // Unix seconds
}

type metric struct {
	name, kind, help string
	value            *atomic.Int64
	labels           string
}

func (a *Agent) all() []metric {
	return []metric{
		{"secinfra_agent_svids_signed_total", "counter", "Workload SVIDs the server signed for this agent.", &a.SVIDsSigned, ""},
		{"secinfra_agent_signing_failures_total", "counter", "Workload SVID signings that failed (retried).", &a.SigningFailures, ""},
		{"secinfra_agent_entry_sync_failures_total", "counter", "Entry fetches that failed (the entries held are served).", &a.SyncFailures, ""},
		{"secinfra_agent_node_renewals_total", "counter", "Node SVID renewals.", &a.NodeRenewals, ""},
		{"secinfra_agent_node_renewal_failures_total", "counter", "Node SVID renewals that failed (retried until expiry).", &a.NodeRenewFailed, ""},
		{"secinfra_agent_workload_calls_total", "counter", "Workload API calls by outcome.", &a.CallsServed, `outcome="served"`},
		{"secinfra_agent_workload_calls_total", "counter", "", &a.CallsDenied, `outcome="permission_denied"`},
		{"secinfra_agent_workload_calls_total", "counter", "", &a.CallsInvalid, `outcome="invalid_argument"`},
		{"secinfra_agent_entries", "gauge", "Registration entries of this node.", &a.Entries, ""},
		{"secinfra_agent_svids", "gauge", "Unexpired workload SVIDs held.", &a.SVIDs, ""},
		{"secinfra_agent_node_svid_not_after_seconds", "gauge", "When the node SVID expires (Unix time).", &a.NodeSVIDNotAfter, ""},
	}
}

// Write renders every metric in the Prometheus text exposition format.
func (a *Agent) Write(w io.Writer) error {
	for _, m := range a.all() {
		if m.help != "" {
			if _, err := fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n", m.name, m.help, m.name, m.kind); err != nil {
				return err
			}
		}
		name := m.name
		if m.labels != "" {
			name += "{" + m.labels + "}"
		}
		if _, err := fmt.Fprintf(w, "%s %d\n", name, m.value.Load()); err != nil {
			return err
		}
	}
	return nil
}
