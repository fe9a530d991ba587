# frozen_string_literal: true

# secinfra Ruby SDK: mTLS workload identity, secrets and authorization checks.
#
#   require "secinfra"
#
#   client = Secinfra::Client.enrol("https://127.0.0.1:8443", join_token: token,
#                                   bundle_file: ".dev/data/admin/bundle.pem")
#   secret = client.secrets.get_secret(name: "payments/db/password")
#
# Public: {Secinfra::Client}, {Secinfra::CallOptions}, the errors
# ({Secinfra::Error} and its subclasses), {Secinfra.capture}, the identity
# types ({Secinfra::StaticIdentity}, {Secinfra::RotatingIdentity},
# {Secinfra::X509Identity}, {Secinfra::TrustBundle}, {Secinfra::RotationEvent},
# {Secinfra::FileSink}, {Secinfra::Identity}, {Secinfra::SpiffeID}), observers
# ({Secinfra::Observer}, the values it is given, {Secinfra::TraceContext}) and
# the counters built on them ({Secinfra::Metrics::Counters}),
# service-to-service mTLS ({Secinfra::MTLS}) and the generated models under
# {Secinfra::V1}. {Secinfra::RPC} is the contract the generated clients call;
# {Secinfra::Runtime} is the hand-written implementation behind it
# (docs/sdk/floor-plan.md maps both).
module Secinfra
end

require_relative "secinfra/version"
require_relative "secinfra/errors"
require_relative "secinfra/rpc"
require_relative "secinfra/runtime/clock"
require_relative "secinfra/runtime/meta"
require_relative "secinfra/observer"
require_relative "secinfra/runtime/observers"
require_relative "secinfra/runtime/retry"
require_relative "secinfra/runtime/budget"
require_relative "secinfra/runtime/cache"
require_relative "secinfra/runtime/single_flight"
require_relative "secinfra/runtime/rotation"
require_relative "secinfra/identity"
require_relative "secinfra/runtime/request"
require_relative "secinfra/runtime/answer"
require_relative "secinfra/runtime/endpoints"
require_relative "secinfra/runtime/watchdog"
require_relative "secinfra/runtime/transport"
require_relative "secinfra/runtime/call"
require_relative "secinfra/gen/all"
require_relative "secinfra/client"
require_relative "secinfra/metrics"
require_relative "secinfra/mtls"

module Secinfra
  # The generated models of secinfra.v1 (an alias of {Secinfra::V1}).
  Models = V1
end
