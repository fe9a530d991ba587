# frozen_string_literal: true

module Secinfra
  # Workload identity (spec 8-10), one subject per file under identity/:
  # the SPIFFE ID (spiffe_id.rb), the private key and its CSR (keys.rb), the X509-SVID snapshot
  # (snapshot.rb), the trust bundle (bundle.rb), the {Identity::Source}
  # interface the transport asks on every new connection (source.rb), the
  # static and rotating sources (static.rb, rotating.rb), rotation events
  # (events.rb) and the file sink (file_sink.rb). When to renew and refresh
  # is {Runtime::RotationPolicy}'s (runtime/rotation.rb).
  module Identity
    # Identity problems that are not call errors (a bad certificate, a bundle
    # that does not parse, a renewed certificate that is refused).
    class IdentityError < Secinfra::Error
      DEFAULT_CODE = "invalid_argument"
    end
  end
end

require_relative "identity/spiffe_id"
require_relative "identity/keys"
require_relative "identity/snapshot"
require_relative "identity/bundle"
require_relative "identity/source"
require_relative "identity/events"
require_relative "identity/static"
require_relative "identity/rotating"
require_relative "identity/file_sink"
