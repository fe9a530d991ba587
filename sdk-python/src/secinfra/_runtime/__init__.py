"""The hand-written implementation behind the RPC contract (``secinfra._rpc``).

One subject per module: retry decisions (`_retry`), the retry budget
(`_budget`), the response cache (`_cache`) and single-flight
(`_single_flight`), rotation timing (`_rotation`), connections and TLS
(`_transport`, `_tls`, `_watchdog`), and the call pipeline that ties them
together and implements `secinfra._rpc.Invoker` (`_call`, with `_request`
and `_answer`). Generated code never imports this package; docs/sdk/
floor-plan.md maps each subject to its file in every SDK.
"""
